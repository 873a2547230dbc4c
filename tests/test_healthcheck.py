"""`vigil healthcheck --stage X`: what container health checks run."""

from __future__ import annotations

import socket

import redis

from bus.server import EmbeddedRedis
from tests.conftest import run_cli


def test_healthcheck_reads_this_hosts_heartbeat():
    with EmbeddedRedis() as server:
        r = redis.Redis(unix_socket_path=str(server.socket))
        r.set(f"vigil:stage:analyzer:{socket.gethostname()}-123", b"{}", ex=10)
        r.close()
        env = {"REDIS_URL": server.url}
        ok = run_cli(["healthcheck", "--stage", "analyzer"], env=env, timeout=60)
        assert ok.returncode == 0, ok.stderr
        missing = run_cli(["healthcheck", "--stage", "ingest"], env=env, timeout=60)
        assert missing.returncode == 1
    down = run_cli(["healthcheck", "--stage", "ingest"], env={"REDIS_URL": "redis://127.0.0.1:1/0"}, timeout=60)
    assert down.returncode == 1 and "Error" in down.stderr
