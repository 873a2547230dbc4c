"""Zones and masks per camera, drawn in the dashboard and stored in Redis (the scheduler
follows changes within a second, no restart). The YAML's `scheduler.cameras.{id}.zones` and
`mask` seed them; an entry drawn through the API is kept across restarts, one that came from
the config follows the config.

Polygons are lists of [x, y] in normalised image coordinates (0..1, origin top left), the
same as the scheduler settings, so they survive resolution changes."""

from __future__ import annotations

import time
from typing import Annotated, Literal

import msgspec

from bus import messages
from bus.connection import Bus

Coord = Annotated[float, msgspec.Meta(ge=0, le=1)]
Point = Annotated[list[Coord], msgspec.Meta(min_length=2, max_length=2)]
Polygon = Annotated[list[Point], msgspec.Meta(min_length=3, max_length=64)]
ZoneName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


class CameraAreas(msgspec.Struct, kw_only=True, tag="areas", tag_field="type", forbid_unknown_fields=True):
    """One camera's named zones (motion touching one names it; zone rules use the names) and
    masks (motion inside is ignored)."""

    v: int = messages.SCHEMA_VERSION
    camera: str = ""
    zones: Annotated[dict[ZoneName, Polygon], msgspec.Meta(max_length=32)] = {}
    masks: Annotated[list[Polygon], msgspec.Meta(max_length=32)] = []
    source: Literal["api", "config"] = "api"
    updated: float = 0.0
    by: str = ""


class AreasInput(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The API body of PUT /api/cameras/{id}/zones."""

    zones: Annotated[dict[ZoneName, Polygon], msgspec.Meta(max_length=32)] = {}
    masks: Annotated[list[Polygon], msgspec.Meta(max_length=32)] = []


class ZoneStore:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def get(self, camera: str) -> CameraAreas | None:
        raw = await self.bus.r.hget(self.bus.keys.camera_areas, camera)
        return messages.decode(raw, CameraAreas) if raw else None

    async def all(self) -> dict[str, CameraAreas]:
        out = {}
        for k, raw in (await self.bus.r.hgetall(self.bus.keys.camera_areas)).items():
            try:
                out[k.decode()] = messages.decode(raw, CameraAreas)
            except msgspec.DecodeError:
                continue
        return out

    async def put(self, camera: str, zones: dict, masks: list, *, by: str, source: str = "api") -> CameraAreas:
        areas = CameraAreas(camera=camera, zones=zones, masks=masks, source=source, updated=time.time(), by=by)  # type: ignore[arg-type]
        await self.bus.r.hset(self.bus.keys.camera_areas, camera, messages.encode(areas))
        return areas

    async def remove(self, camera: str) -> bool:
        return bool(await self.bus.r.hdel(self.bus.keys.camera_areas, camera))

    async def seed(self, camera: str, zones: dict, masks: list) -> None:
        """From the config: replaces an earlier config seed, never what was drawn in the UI."""
        current = await self.get(camera)
        if current is not None and current.source == "api":
            return
        if current is not None and current.zones == zones and current.masks == masks:
            return
        await self.put(camera, zones, masks, by="config", source="config")
