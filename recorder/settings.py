"""Recorder settings (composed into the one YAML schema by vigil/config.py)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RecorderSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="record a clip per packet (events and alerts can then be played)")
    retention_s: int = Field(86400, ge=60, description="clips older than this are deleted (Redis TTL)")
    pre_roll_s: float = Field(2.0, ge=0, le=30, description="seconds of frames before the packet's first frame")
    post_roll_s: float = Field(2.0, ge=0, le=30, description="seconds of frames after its last frame")
    max_fps: float = Field(10.0, gt=0, le=30, description="frames per second kept in a clip (at most the sample rate)")
    bitrate: int = Field(300_000, ge=50_000, le=5_000_000, description="VP8 target bits per second")
    max_frames: int = Field(300, ge=6, le=3000, description="longest clip in frames")
