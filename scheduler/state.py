"""A camera's scheduling state as data, so that whoever schedules the camera next (another
scheduler process after a failover, or this one after a restart) continues exactly where the
last owner was: same motion background, same activity, same pending packet, hence the same
packets with the same ids. Kept in Redis under `sched:state:{camera}` with its cursor.

Only the scheduler reads and writes it (msgpack; `v` guards against an older layout)."""

from __future__ import annotations

import msgspec
import numpy as np

STATE_VERSION = 1


class Array(msgspec.Struct, array_like=True):
    dtype: str
    shape: tuple[int, ...]
    data: bytes

    @classmethod
    def of(cls, a: np.ndarray) -> "Array":
        return cls(a.dtype.str, tuple(a.shape), np.ascontiguousarray(a).tobytes())

    def array(self) -> np.ndarray:
        return np.frombuffer(self.data, np.dtype(self.dtype)).reshape(self.shape).copy()


class DetectorState(msgspec.Struct, kw_only=True):
    shape: tuple[int, int] | None
    background: Array | None
    prev: Array | None
    still: Array | None
    last_ts: float | None
    calibrate_until: float
    n: int
    bq: tuple[float, float, float] | None


class MotionState(msgspec.Struct, kw_only=True, array_like=True):
    area: float
    boxes: list[list[float]]
    zones: list[str]
    recalibrated: bool
    global_motion: bool
    thumb: Array | None


class CandidateState(msgspec.Struct, kw_only=True, array_like=True):
    entry_id: str
    seq: int
    ts: float
    wall: float
    width: int
    height: int
    jpeg: bytes
    motion: MotionState


class PendingState(msgspec.Struct, kw_only=True):
    reason: str
    start: float
    frames: list[CandidateState]
    slot: int
    best: CandidateState | None
    best_score: float


class PackerState(msgspec.Struct, kw_only=True):
    active: bool
    moving_run: int
    onset_ts: float
    last_motion_ts: float
    last_packet_ts: float | None
    last_key: CandidateState | None
    history: list[CandidateState]
    pending: PendingState | None
    # The activity going on (issue 13): the next owner continues it under the same id.
    activity: str = ""
    onset_wall: float = 0.0
    last_motion_wall: float = 0.0
    last_wall: float | None = None


class CameraSnapshot(msgspec.Struct, kw_only=True):
    v: int = STATE_VERSION
    camera: str
    cursor: str  # frames-stream id of the last frame this state has seen
    saved: float  # epoch seconds
    detector: DetectorState
    packer: PackerState


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(CameraSnapshot)


def encode(snap: CameraSnapshot) -> bytes:
    return _encoder.encode(snap)


def decode(data: bytes) -> CameraSnapshot | None:
    """The snapshot, or None when it is unreadable or of another layout version."""
    try:
        snap = _decoder.decode(data)
    except (msgspec.DecodeError, ValueError):
        return None
    return snap if snap.v == STATE_VERSION else None
