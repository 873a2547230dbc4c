"""Analyzer settings: which backend, how many at once, what counts as stale."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class CpuBackendSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    people: bool = Field(True, description="OpenCV HOG people detector")
    faces: bool = Field(False, description="OpenCV Haar frontal-face cascade")
    upscale_to: int = Field(800, ge=256, le=1920, description="frames are enlarged to this width for HOG (people >= 128 px tall)")
    frames: int = Field(3, ge=1, le=6, description="frames per packet the detectors look at")
    hit_threshold: float = Field(0.3, description="HOG SVM margin a detection must exceed")


class OpenAISettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str = Field("http://127.0.0.1:8000/v1", description="any OpenAI-compatible server (vLLM, SGLang, ...)")
    model: str = "openbmb/MiniCPM-V-4_5"
    api_key_env: str = Field("OPENAI_API_KEY", description="environment variable holding the key (never the key itself)")
    timeout_s: float = Field(30.0, gt=0)
    max_retries: int = Field(2, ge=0, le=10)
    concurrency: int = Field(8, ge=1, le=256, description="requests in flight per server")


class MiniCPMSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_id: str = Field("openbmb/MiniCPM-V-4_5", description="or openbmb/MiniCPM-V-4_5-int4 / -AWQ, or a local path")
    device: str = "cuda"
    attn_implementation: Literal["sdpa", "flash_attention_2"] = "sdpa"
    max_batch: int = Field(4, ge=1, le=32, description="packets of different cameras batched into one chat() call")
    max_new_tokens: int = Field(512, ge=16, le=4096)


class AnalyzerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: Literal["cpu", "minicpm", "openai"] = "cpu"
    concurrency: int = Field(2, ge=1, le=64, description="packets in flight per worker")
    stale_after_s: float = Field(30.0, gt=0, description="packets older than this are skipped, counted, logged")
    visibility_timeout_s: float = Field(60.0, gt=1, description="a packet pending this long is reclaimed (XAUTOCLAIM)")
    cpu: CpuBackendSettings = CpuBackendSettings()
    openai: OpenAISettings = OpenAISettings()
    minicpm: MiniCPMSettings = MiniCPMSettings()
