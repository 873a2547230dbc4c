"""Scheduler settings: motion detection and packet assembly (defaults suit 5 fps sampling)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class MotionSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    width: int = Field(160, ge=32, le=640, description="motion is scored on luma shrunk to this width")
    blur: int = Field(5, ge=1, le=21, description="Gaussian kernel (odd) against sensor noise")
    threshold: int = Field(25, ge=1, le=255, description="luma difference that counts as a changed pixel")
    alpha: float = Field(0.05, gt=0, le=1, description="background learning rate per sampled frame")
    min_box_area: float = Field(0.0008, ge=0, le=1, description="smallest moving blob, fraction of the image")
    global_change: float = Field(0.5, gt=0, le=1, description="changed share that means lighting, not motion")


class SchedulerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    motion: MotionSettings = MotionSettings()
    start_area: float = Field(0.002, ge=0, le=1, description="motion area that starts an activity")
    start_frames: int = Field(1, ge=1, le=10, description="consecutive moving samples needed to start")
    post_roll_s: float = Field(2.0, ge=0, description="an activity ends after this long without motion")
    pre_roll_frames: int = Field(2, ge=0, le=5, description="frames before onset included in the first packet")
    onset_budget_s: float = Field(0.8, gt=0, le=5, description="the onset packet leaves at most this long after onset")
    packet_span_s: float = Field(4.0, gt=0, le=30, description="stream time one later packet covers")
    frames_per_packet: int = Field(6, ge=1, le=6)
    heartbeat_s: float | None = Field(None, gt=0, description="a packet every this often on idle cameras; off if unset")
    retention_s: int = Field(86400, ge=60, description="packets older than this are trimmed from the stream")
