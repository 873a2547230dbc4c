"""Model backends: one small class each behind `Backend` (see base.py)."""

from __future__ import annotations

from analyzer.backends.base import Analysis, Backend, BackendError, BackendUnavailable
from analyzer.settings import AnalyzerSettings


def make_backend(settings: AnalyzerSettings) -> Backend:
    # Imports are local: the minicpm module must not pull torch unless chosen (and even then
    # torch loads only in start()).
    if settings.backend == "cpu":
        from analyzer.backends.cpu import CpuBackend

        return CpuBackend(settings.cpu, concurrency=settings.concurrency)
    if settings.backend == "openai":
        from analyzer.backends.openai import OpenAIBackend

        return OpenAIBackend(settings.openai, settings.thinking)
    if settings.backend == "minicpm":
        from analyzer.backends.minicpm import MiniCPMBackend

        return MiniCPMBackend(settings.minicpm, settings.thinking)
    raise ValueError(f"unknown analyzer backend {settings.backend!r}")


__all__ = ["Analysis", "Backend", "BackendError", "BackendUnavailable", "make_backend"]
