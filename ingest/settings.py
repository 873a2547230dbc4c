"""Ingest's own settings (composed into the one YAML schema by vigil/config.py)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class IngestSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_size: int = Field(448, ge=64, le=1344, description="longest side bound of keyframe JPEGs (MiniCPM-V: 448)")
    jpeg_quality: int = Field(85, ge=30, le=100)
    luma_width: int = Field(320, ge=32, le=1280, description="width of the luma plane sent for motion scoring")
    frames_maxlen: int = Field(300, ge=10, description="ring buffer length of frames:{camera} (MAXLEN ~)")
    queue_frames: int = Field(32, ge=2, description="frames held between decode and Redis before dropping (live)")
    decode_threads: int = Field(2, ge=0, le=16, description="codec threads per camera (0: FFmpeg decides)")
    backpressure_frames: int = Field(
        150, ge=4, description="fast (replay) mode: how far ingest may run ahead of the scheduler"
    )
