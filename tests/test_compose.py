"""docker-compose.yml parses and validates (Debian's docker-compose needs no engine for this)."""

from __future__ import annotations

import os
import subprocess

import yaml

from tests.conftest import ROOT, need, which


def test_compose_file_validates():
    exe = which("docker-compose")
    need(exe is not None, "docker-compose (Debian package docker-compose)")
    res = subprocess.run([exe, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"], capture_output=True, text=True,
                         cwd=ROOT, timeout=60, env={**os.environ, "VIGIL_TOKEN": "compose-check"})
    assert res.returncode == 0, res.stderr


def test_compose_has_every_stage_redis_and_a_gpu_model_server():
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = doc["services"]
    for name in ("redis", "ingest", "scheduler", "analyzer", "alerts", "web", "vllm"):
        assert name in services, name
    gpu = services["vllm"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"]
    assert "MiniCPM-V-4_5" in " ".join(map(str, services["vllm"]["command"]))
    assert "appendonly" in " ".join(map(str, services["redis"]["command"]))
    for name, svc in services.items():
        assert "healthcheck" in svc, f"{name} has no health check"
