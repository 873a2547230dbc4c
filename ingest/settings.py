"""Ingest's own settings (composed into the one YAML schema by vigil/config.py)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bus.urls import DEFAULT_SCHEMES, SourcePolicy


class IngestSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_size: int = Field(448, ge=64, le=1344, description="keyframe JPEGs at the model processor's own size "
                            "(bus/frame_size.py): about model_size x model_size of area, sides multiples of 14, aspect "
                            "kept, never enlarged (MiniCPM-V 4.5: 448, so 16:9 -> 602x336)")
    jpeg_quality: int = Field(85, ge=30, le=100)
    luma_width: int = Field(160, ge=32, le=1280, description="width of the luma plane sent for motion scoring (the scheduler scores at 160)")
    frames_maxlen: int = Field(300, ge=10, description="ring buffer length of frames:{camera} (MAXLEN ~)")
    queue_frames: int = Field(32, ge=2, description="frames held between decode and Redis before dropping (live)")
    decode_threads: int = Field(
        1, ge=0, le=16, description="codec threads per camera (0: FFmpeg decides). One thread decodes 720p H.264 "
        "at ~490 fps; more threads cost CPU (and a frame of latency each) that a camera rarely needs",
    )
    backpressure_frames: int = Field(
        150, ge=4, description="fast (replay) mode: how far ingest may run ahead of the scheduler"
    )
    opencv_threads: int = Field(
        0, ge=0, le=64, description="OpenCV's thread pool size for the process (process-wide). 0: one thread in "
        "processes without the analyzer stage (ingest's and the scheduler's OpenCV calls are tiny and the pool's "
        "wake-ups cost more than they save), OpenCV's default with it",
    )
    # -- live sources: reconnects --------------------------------------------------------
    reconnect_min_s: float = Field(0.5, gt=0, le=60, description="first reconnect delay")
    reconnect_max_s: float = Field(30.0, gt=0, le=3600, description="reconnect delay cap")
    reconnect_jitter: float = Field(0.3, ge=0, lt=1, description="delays are scaled by a random 1-jitter..1")
    healthy_s: float = Field(30.0, gt=0, description="streaming this long resets the reconnect delay")
    probe_s: float = Field(
        1.0, ge=0, le=60, description="while retrying, the camera's host and port are probed (a TCP connect) this "
        "often; when a camera that was away answers again it is reopened at once instead of at the next backoff "
        "step (0: off)",
    )
    # -- scale-out: camera leases ----------------------------------------------------------
    lease_ttl_s: float = Field(10.0, ge=1, le=300, description="a dead worker's cameras move within this")
    poll_s: float = Field(1.0, gt=0, le=60, description="registry poll, lease renewal and status period")
    max_cameras: int = Field(0, ge=0, description="most cameras this worker takes (0: its fair share)")
    # -- what cameras may be (docs/security.md) -------------------------------------------------
    allowed_schemes: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SCHEMES),
        description="camera URL schemes that may be opened ('file' covers plain paths); anything else, "
        "e.g. FFmpeg's concat:, pipe: or ftp:, is refused at config and API time and by ingest",
    )
    allowed_paths: list[str] = Field(
        default_factory=list,
        description="directories file cameras may read from (after links are resolved); empty: any file",
    )
    max_source_pixels: int = Field(
        4096 * 4096, ge=64 * 64, le=16384 * 16384,
        description="largest frame (width x height) a source may send (default: 4K and 5K pass); larger "
        "streams are refused before their frames are decoded, so a hostile source cannot exhaust memory",
    )
    # -- WebRTC (WHIP) ----------------------------------------------------------------------
    ice_servers: list[str] = Field(
        default_factory=list, description="STUN/TURN URLs for WHIP sessions (empty: host candidates only)"
    )

    @field_validator("allowed_schemes")
    @classmethod
    def _lower(cls, v: list[str]) -> list[str]:
        return [x.lower() for x in v]

    def policy(self) -> SourcePolicy:
        return SourcePolicy(schemes=tuple(self.allowed_schemes), paths=tuple(self.allowed_paths))
