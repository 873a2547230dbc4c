"""Zones and masks per camera: read (viewer), draw (admin). The scheduler applies a change
within a second, without a restart (bus/zones.py)."""

from typing import Annotated

import msgspec
from fastapi import APIRouter, Depends, HTTPException, Path as PathParam, Request, Response

from bus.connection import Bus
from bus.names import ID_PATTERN
from bus.registry import Registry
from bus.zones import AreasInput, ZoneStore
from web.auth import Principal
from web.body import body_schema, convert, json_response, read_object
from web.deps import Access

CameraId = Annotated[str, PathParam(pattern=ID_PATTERN)]


def zones_router(bus: Bus, access: Access) -> APIRouter:
    r = APIRouter(prefix="/api/cameras", tags=["cameras"])
    Viewer = Annotated[Principal, Depends(access.viewer)]
    Admin = Annotated[Principal, Depends(access.admin)]
    registry = Registry(bus)
    store = ZoneStore(bus)

    async def known(camera_id: str) -> None:
        if await registry.camera(camera_id) is None:
            raise HTTPException(404, f"unknown camera {camera_id!r}")

    @r.get("/{camera_id}/zones")
    async def get_zones(camera_id: CameraId, who: Viewer) -> Response:
        """Named zones and masks (polygons of [x, y] in 0..1, origin top left)."""
        await known(camera_id)
        areas = await store.get(camera_id)
        if areas is None:
            return json_response({"camera": camera_id, "zones": {}, "masks": [], "source": "none", "updated": None})
        return json_response(msgspec.to_builtins(areas))

    @r.put("/{camera_id}/zones", openapi_extra=body_schema(AreasInput))
    async def put_zones(camera_id: CameraId, request: Request, who: Admin) -> Response:
        """Replace the camera's zones and masks; rules name zones by their keys."""
        await known(camera_id)
        body = convert(await read_object(request), AreasInput, "invalid zones")
        areas = await store.put(camera_id, body.zones, body.masks, by=who.name)
        return json_response(msgspec.to_builtins(areas))

    @r.delete("/{camera_id}/zones", status_code=204)
    async def delete_zones(camera_id: CameraId, who: Admin) -> Response:
        """Forget what was drawn: the scheduler goes back to the config's zones and masks."""
        await known(camera_id)
        await store.remove(camera_id)
        return Response(status_code=204)

    return r
