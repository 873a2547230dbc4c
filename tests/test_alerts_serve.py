"""End to end: `vigil serve` on real footage paced like a camera, a fast rule, and a real
webhook receiver; plus the rule API on the live server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT
from tests.receiver import Receiver

pytestmark = pytest.mark.integration
TOKEN = "serve-token-" + "t" * 20
SECRET = "whsec-serve-" + "s" * 20


def test_footage_to_signed_webhook_two_phase(media, free_port, tmp_path: Path):
    rec = Receiver(SECRET).start()
    cfg = tmp_path / "vigil.yaml"
    cfg.write_text(
        f"cameras:\n  - {{id: walk, url: '{media / 'vtest.avi'}', pace: realtime}}\n"
        "rules:\n  - {id: walker, label: person, fast: true, confirm_s: 20, quiet_s: 30, severity: warning}\n"
        "alerts:\n  webhooks:\n    backoff_base_s: 0.2\n"
        f"    endpoints:\n      - {{id: hook, url: '{rec.url}', secret_env: HOOK_SECRET, allow_private: true}}\n"
        f"web:\n  port: {free_port}\n"
    )
    env = {**os.environ, "VIGIL_TOKEN": TOKEN, "HOOK_SECRET": SECRET}
    env.pop("REDIS_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "vigil.cli", "serve", "-c", str(cfg)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{free_port}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        started = time.monotonic()
        deadline = started + 40
        while time.monotonic() < deadline and not any(h.body.get("phase") == "confirmed" for h in rec.hits):
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.2)
        hits = list(rec.hits)
        # The rule API on the live server: a new rule reaches the running stage.
        r = httpx.post(f"{base}/api/rules", json={"id": "moving", "kind": "motion", "min_area": 0.01}, headers=auth)
        assert r.status_code == 201, r.text
        assert [x["id"] for x in httpx.get(f"{base}/api/rules", headers=auth).json()["items"]] == ["moving", "walker"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(h.body.get("rule") == "moving" for h in rec.hits):
            time.sleep(0.2)
        assert any(h.body.get("rule") == "moving" for h in rec.hits), "the rule added over the API never fired"
        listed = httpx.get(f"{base}/api/webhooks/deliveries?status=delivered", headers=auth).json()["items"]
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        rec.stop()
    assert hits, "no webhook arrived"
    first = hits[0]
    assert first.event == "alert.open" and first.body["phase"] == "onset" and first.signed_ok
    confirmed = next(h for h in hits if h.body.get("phase") == "confirmed")
    assert confirmed.body["id"] == first.body["id"] and confirmed.event == "alert.update"
    assert confirmed.body["message"].startswith("Confirmed:")
    assert {d["id"] for d in listed} >= {h.delivery for h in hits}
    assert SECRET not in (proc.stderr.read() if proc.stderr else "")
