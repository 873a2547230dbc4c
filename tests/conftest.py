"""Shared fixtures: real media, a real Redis, helpers to run the real CLI."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MEDIA = ROOT.parent / "shared" / "media"
IN_CI = os.environ.get("CI", "").lower() == "true"


def need(condition: bool, what: str) -> None:
    """In CI a missing real component is a failure, never a skip."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required component missing in CI: {what}")
    pytest.skip(f"missing: {what}")


@pytest.fixture(scope="session")
def media() -> Path:
    need((MEDIA / "car-detection.mp4").is_file(), f"sample media in {MEDIA}")
    return MEDIA


@pytest.fixture
def vigil_bin() -> list[str]:
    return [sys.executable, "-m", "vigil.cli"]


@pytest.fixture
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def bus():
    """A real redis-server (embedded, private) for one test."""
    from bus import open_bus

    async with open_bus(None) as b:
        yield b


def run_cli(args: list[str], timeout: float = 240, env: dict | None = None) -> subprocess.CompletedProcess:
    e = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "vigil.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=e, cwd=ROOT)


def which(name: str) -> str | None:
    return shutil.which(name)


@pytest.fixture(scope="session")
def tiny_minicpm():
    """The official MiniCPM-V 4.5 code on a tiny random-weight checkpoint (built once, cached
    outside the repo; tests/support/tiny_minicpm.py). `.path` is the model id, `.env` what
    subprocesses need."""
    from tests.support import tiny_minicpm as tm

    why = tm.missing()
    need(why is None, why or "")
    return tm.tiny_model()


@pytest.fixture(scope="session")
def tiny_loaded(tiny_minicpm):
    """The tiny checkpoint loaded once per session through Vigil's own load_model (CPU, float32)."""
    from analyzer.backends.minicpm import load_model
    from analyzer.settings import MiniCPMSettings

    return load_model(MiniCPMSettings(model_id=str(tiny_minicpm.path), device="cpu", dtype="float32"))
