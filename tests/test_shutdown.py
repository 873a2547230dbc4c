"""Ctrl-C on a real `vigil serve`: stages stop in order, the embedded Redis last, no
tracebacks; the default log level does not print a line per webhook POST."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT
from tests.receiver import Receiver

pytestmark = pytest.mark.integration
TOKEN = "shutdown-token-" + "z" * 16
SECRET = "s" * 32


def _redis_children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid,ppid,comm"], capture_output=True, text=True).stdout
    return [int(p) for p, pp, comm in (line.split(None, 2) for line in out.splitlines()[1:])
            if int(pp) == pid and "redis" in comm]


def test_sigint_stops_cleanly_and_webhook_posts_are_not_logged(media, free_port, tmp_path: Path):
    rec = Receiver(SECRET).start()
    cfg = tmp_path / "vigil.yaml"
    cfg.write_text(
        f"cameras:\n  - id: lot\n    url: {media / 'car-detection.mp4'}\n    pace: realtime\n    loop: true\n"
        f"rules:\n  - id: moving\n    kind: motion\n    min_area: 0.001\n    quiet_s: 1\n    consolidate_s: 1\n"
        f"alerts:\n  webhooks:\n    endpoints:\n      - id: rec\n        url: {rec.url}\n        secret_env: HOOK_SECRET\n"
        f"        allow_private: true\n        events: ['*']\n"
        f"web:\n  port: {free_port}\n"
    )
    env = {**os.environ, "VIGIL_TOKEN": TOKEN, "HOOK_SECRET": SECRET}
    env.pop("REDIS_URL", None)
    env.pop("VIGIL_LOG_LEVEL", None)
    # Its own process group, as a shell gives a foreground job: the SIGINT below reaches every
    # process in the group at once, exactly like Ctrl-C in a terminal.
    proc = subprocess.Popen([sys.executable, "-m", "vigil.cli", "serve", "-c", str(cfg)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{free_port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(rec.accepted()) < 3:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            time.sleep(0.3)
        assert len(rec.accepted()) >= 3, "no webhook deliveries within 60 s"
        assert httpx.get(f"{base}/readyz", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        # A live view left open must not hold the shutdown up.
        import threading

        def watch() -> None:
            try:
                with httpx.stream("GET", f"{base}/api/cameras/lot/live.mjpeg", timeout=30,
                                  headers={"Authorization": f"Bearer {TOKEN}"}) as res:
                    for _ in res.iter_bytes():
                        pass
            except httpx.HTTPError:
                pass

        threading.Thread(target=watch, daemon=True).start()
        time.sleep(1.0)
        redis = _redis_children(proc.pid)
        assert redis, "no embedded redis-server child"
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group
        t0 = time.monotonic()
        out, _ = proc.communicate(timeout=60)
        stop_s = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
        rec.stop()
    assert proc.returncode == 0, out
    assert stop_s < 15, f"shutdown took {stop_s:.1f}s"
    assert "Traceback" not in out, out
    assert not re.search(r"ERROR|CRITICAL", out), out
    assert "HTTP Request: POST" not in out, out  # httpx's per-request INFO line
    for pid in redis:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text(), \
            "embedded redis-server left running"
