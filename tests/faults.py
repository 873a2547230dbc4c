"""Helpers for the fault tests: a `vigil` child process against a real Redis, and what the
kernel says about that process (threads, open file descriptors, resident memory)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

import httpx
import pytest
import redis

from tests.conftest import ROOT

T = TypeVar("T")


@dataclass(frozen=True)
class ProcSample:
    """One look at a process in /proc: what leaks would show in."""

    at: float
    threads: int
    fds: int
    sockets: int
    rss_kb: int
    tcp: int = 0  # of the sockets: TCP (HTTP clients and servers); the rest are mostly unix (Redis)

    def __str__(self) -> str:
        return (f"threads={self.threads} fds={self.fds} sockets={self.sockets} (tcp {self.tcp}) "
                f"rss={self.rss_kb / 1024:.1f}MB")


def _tcp_inodes(pid: int) -> set[str]:
    inodes: set[str] = set()
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        inodes.update(line.split()[9] for line in lines if len(line.split()) > 9)
    return inodes


def sample(pid: int) -> ProcSample:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    fd_dir = Path(f"/proc/{pid}/fd")
    fds = sockets = tcp = 0
    tcp_inodes = _tcp_inodes(pid)
    for fd in os.listdir(fd_dir):
        fds += 1
        try:
            target = os.readlink(fd_dir / fd)
        except OSError:
            continue  # closed between listdir and readlink
        if target.startswith("socket:["):
            sockets += 1
            tcp += target[8:-1] in tcp_inodes
    return ProcSample(time.time(), int(fields["Threads"]), fds, sockets, int(fields["VmRSS"].split()[0]), tcp)


class VigilProcess:
    """`python -m vigil.cli <args>` as a child, its output in a log file (read on failure)."""

    def __init__(self, args: list[str], redis_url: str, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        self._log = open(log_path, "w")
        e = {**os.environ, "REDIS_URL": redis_url, **(env or {})}
        self.proc = subprocess.Popen([sys.executable, "-m", "vigil.cli", *args], cwd=ROOT, env=e,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> None:
        if self.proc.poll() is not None:
            pytest.fail(f"vigil exited with {self.proc.returncode}:\n{self.log_tail()}")

    def log_tail(self, n: int = 4000) -> str:
        self._log.flush()
        try:
            return self.log_path.read_text()[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


def poll(pred: Callable[[], T], timeout: float, what: str, every: float = 0.2,
         proc: VigilProcess | None = None) -> T:
    """Call `pred` until it returns something truthy; Redis being briefly away is not fatal."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None:
            proc.alive()
        try:
            got = pred()
            if got:
                return got
        except (redis.ConnectionError, httpx.HTTPError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}"
                        + (f"\n--- vigil log ---\n{proc.log_tail()}" if proc else ""))
        time.sleep(every)


def wait_healthy(base: str, proc: VigilProcess, timeout: float = 40) -> None:
    poll(lambda: httpx.get(f"{base}/healthz", timeout=1).status_code == 200, timeout, "/healthz", proc=proc)


def soak_seconds(default_ci: float = 300, default_local: float = 60) -> float:
    """How long the long outages last: VIGIL_SOAK_S, else 5 minutes in CI and 1 minute locally."""
    raw = os.environ.get("VIGIL_SOAK_S")
    if raw:
        return float(raw)
    return default_ci if os.environ.get("CI", "").lower() == "true" else default_local
