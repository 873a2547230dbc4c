"""Model backends: one small class each behind `Backend` (see base.py)."""

from __future__ import annotations

from analyzer.backends.base import Analysis, Backend
from analyzer.settings import AnalyzerSettings


def make_backend(settings: AnalyzerSettings) -> Backend:
    if settings.backend == "cpu":
        from analyzer.backends.cpu import CpuBackend

        return CpuBackend(settings.cpu, concurrency=settings.concurrency)
    raise ValueError(f"backend {settings.backend!r} is not available yet in this build (see README: what is missing)")


__all__ = ["Analysis", "Backend", "make_backend"]
