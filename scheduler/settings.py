"""Scheduler settings: motion detection, activity segmentation, packets (defaults suit 5 fps).

Every field here is a default for all cameras; `cameras: {camera_id: {...}}` overrides any of
them for one camera and adds its mask, zones and sports mode. Polygons are lists of [x, y]
points in normalised image coordinates (0..1, origin top left), so they survive resolution
changes. docs/scheduler.md explains each tunable.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Point = Annotated[list[Annotated[float, Field(ge=0, le=1)]], Field(min_length=2, max_length=2)]
Polygon = Annotated[list[Point], Field(min_length=3, max_length=64)]
ZoneName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


class MotionSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    width: int = Field(160, ge=32, le=640, description="motion is scored on luma shrunk to this width")
    blur: int = Field(5, ge=1, le=21, description="Gaussian kernel (made odd) against sensor noise")
    threshold: int = Field(22, ge=1, le=255, description="luma difference (after contrast matching) that counts as changed")
    learn_s: float = Field(1.5, gt=0, le=600, description="background time constant for quiet pixels")
    learn_motion_s: float = Field(30.0, gt=0, le=3600, description="background time constant inside moving blobs")
    still_s: float = Field(0.8, ge=0, le=60, description="a blob pixel unchanged this long is background (stopped objects, ghosts)")
    dilate: int = Field(2, ge=0, le=10, description="3x3 dilation passes that merge the parts of one object")
    min_box_area: float = Field(0.001, ge=0, le=1, description="smallest moving blob kept, fraction of the image")
    global_change: float = Field(0.35, gt=0, le=1, description="changed share of the image that means lights/exposure/IR, not motion")
    step_change: float = Field(20.0, gt=0, le=255, description="median luma jump between frames that recalibrates (lights, IR)")
    calibration_s: float = Field(1.0, ge=0, le=30, description="after a global change the background learns fast for this long")
    mask: list[Polygon] = Field(default_factory=list, description="areas where motion is ignored")
    zones: dict[ZoneName, Polygon] = Field(default_factory=dict, description="named areas; motion touching one names it")


class CameraOverrides(BaseModel):
    """Per-camera settings: `motion` holds MotionSettings fields, the rest SchedulerSettings fields."""

    model_config = ConfigDict(extra="forbid")

    sports: bool | None = None
    mask: list[Polygon] | None = None
    zones: dict[ZoneName, Polygon] | None = None
    motion: dict[str, Any] = Field(default_factory=dict)
    start_area: float | None = None
    end_area: float | None = None
    start_frames: int | None = None
    post_roll_s: float | None = None
    pre_roll_s: float | None = None
    onset_budget_s: float | None = None
    packet_span_s: float | None = None
    sports_span_s: float | None = None
    min_change: float | None = None
    heartbeat_s: float | None = None
    max_age_s: float | None = None


class SchedulerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    motion: MotionSettings = MotionSettings()
    sports: bool = Field(False, description="large continuous motion is the signal: no recalibration, steady packets")
    start_area: float = Field(0.002, ge=0, le=1, description="motion area that starts an activity")
    end_area: float = Field(0.001, ge=0, le=1, description="motion area that keeps an activity going (hysteresis)")
    start_frames: int = Field(2, ge=1, le=10, description="consecutive moving samples needed to start")
    post_roll_s: float = Field(1.5, ge=0, le=60, description="an activity ends after this long below end_area")
    pre_roll_s: float = Field(0.4, ge=0, le=5, description="frames this long before onset may open the first packet")
    onset_budget_s: float = Field(0.6, gt=0, le=5, description="the onset packet leaves at most this long after onset")
    packet_span_s: float = Field(6.0, gt=0, le=60, description="stream time one later packet of an activity covers")
    sports_span_s: float = Field(2.0, gt=0, le=60, description="packet span in sports mode (steady cadence)")
    frames_per_packet: int = Field(6, ge=1, le=6)
    min_change: float = Field(0.004, ge=0, le=1, description="a keyframe differs from the previous one in at least this share")
    heartbeat_s: float | None = Field(None, gt=0, description="a packet every this often on idle cameras; off if unset")
    max_age_s: float | None = Field(15.0, gt=0, description="live packets older than this are dropped, counted; unset: never")
    retention_s: int = Field(86400, ge=60, description="packets older than this are trimmed from the stream")
    # -- scale-out: several scheduler processes share the cameras through leases -----------
    lease_ttl_s: float = Field(10.0, ge=1, le=300, description="a dead scheduler's cameras move within this")
    poll_s: float = Field(1.0, gt=0, le=60, description="registry poll and lease renewal period")
    snapshot_s: float = Field(
        5.0, gt=0, le=300, description="a camera's state is saved at least this often (a new owner rebuilds the "
        "packets since the last save, with the same ids)",
    )
    snapshot_frames: int = Field(50, ge=1, description="... and at least every this many frames (fast replays)")
    cameras: dict[str, CameraOverrides] = Field(default_factory=dict, description="per-camera overrides")

    @model_validator(mode="after")
    def _check(self) -> "SchedulerSettings":
        if self.end_area > self.start_area:
            raise ValueError("end_area must not exceed start_area (hysteresis)")
        for cam in self.cameras:
            try:
                self.for_camera(cam)
            except (ValidationError, ValueError) as exc:
                raise ValueError(f"cameras.{cam}: {_short(exc)}") from None
        return self

    def for_camera(self, camera: str) -> "SchedulerSettings":
        """The effective settings of one camera: defaults with its overrides applied."""
        o = self.cameras.get(camera)
        if o is None:
            return self
        motion = self.motion.model_dump()
        motion.update(o.motion)
        if o.mask is not None:
            motion["mask"] = o.mask
        if o.zones is not None:
            motion["zones"] = o.zones
        data = self.model_dump(exclude={"cameras", "motion"})
        data.update({k: v for k, v in o.model_dump(exclude={"motion", "mask", "zones"}).items() if v is not None})
        if o.heartbeat_s is None and "heartbeat_s" in o.model_fields_set:
            data["heartbeat_s"] = None
        if o.max_age_s is None and "max_age_s" in o.model_fields_set:
            data["max_age_s"] = None
        return SchedulerSettings.model_validate({**data, "motion": motion})


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()
        )
    return str(exc)
