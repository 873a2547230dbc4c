"""Cameras: list, add, change, remove (the registry in Redis: ingest follows without a restart),
status and the latest snapshot. Camera URLs are redacted in every response; sources are
checked against the source policy (ingest.allowed_schemes / allowed_paths) before they are
stored, and viewers never see raw source errors (they can name hosts and ports)."""

from typing import Annotated

import msgspec
from fastapi import APIRouter, Depends, HTTPException, Path as PathParam, Request, Response

from bus import messages
from bus.connection import Bus
from bus.messages import Camera
from bus.names import ID_PATTERN
from bus.registry import Registry
from bus.urls import SourcePolicy, SourceRefused, check_source, display_source
from web.auth import Principal
from web.body import body_schema, json_response, read_body
from web.deps import Access

CameraId = Annotated[str, PathParam(pattern=ID_PATTERN)]
VIEWER_ERROR = "the source failed; an admin can see why"


def public_source(url: str) -> str:
    return display_source(url)


def status_for(status: dict, who: Principal) -> dict:
    """A camera's status as this caller may see it: admins get the error text (credential-
    free, but it can name a host, a port or a local file); viewers only that there is one."""
    if who.can("admin") or not status.get("last_error"):
        return status
    return {**status, "last_error": VIEWER_ERROR}


def checked(cam: Camera, policy: SourcePolicy) -> Camera:
    try:
        check_source(cam.url, policy)
    except SourceRefused as exc:
        raise HTTPException(422, f"url: {exc}") from None
    return cam


def cameras_router(bus: Bus, access: Access, policy: SourcePolicy | None = None) -> APIRouter:
    r = APIRouter(prefix="/api/cameras", tags=["cameras"])
    registry = Registry(bus)
    policy = policy or SourcePolicy()
    Viewer = Annotated[Principal, Depends(access.viewer)]
    Admin = Annotated[Principal, Depends(access.admin)]

    async def status_of(cam_id: str) -> dict:
        raw = await bus.r.get(bus.keys.camera_status(cam_id))
        return msgspec.json.decode(raw) if raw else {"state": "unknown"}

    async def view(cam: Camera, who: Principal) -> dict:
        data = msgspec.to_builtins(cam)
        data["url"] = public_source(cam.url)
        data["source"] = data["url"]
        data["status"] = status_for(await status_of(cam.id), who)
        data["snapshot_url"] = f"/api/cameras/{cam.id}/snapshot.jpg"
        return data

    async def existing(camera_id: str) -> Camera:
        cam = await registry.camera(camera_id)
        if cam is None:
            raise HTTPException(404, f"unknown camera {camera_id!r}")
        return cam

    @r.get("")
    async def list_cameras(who: Viewer) -> Response:
        cams = sorted((await registry.cameras()).values(), key=lambda c: c.id)
        return json_response([await view(c, who) for c in cams])

    @r.post("", status_code=201, openapi_extra=body_schema(Camera))
    async def add_camera(request: Request, who: Admin) -> Response:
        cam = checked(await read_body(request, Camera), policy)
        if await registry.camera(cam.id) is not None:
            raise HTTPException(409, f"camera {cam.id!r} exists; use PUT or PATCH to change it")
        await registry.put_camera(cam)
        return json_response(await view(cam, who), 201)

    @r.get("/{camera_id}")
    async def get_camera(camera_id: CameraId, who: Viewer) -> Response:
        return json_response(await view(await existing(camera_id), who))

    @r.put("/{camera_id}", openapi_extra=body_schema(Camera))
    async def replace_camera(camera_id: CameraId, request: Request, who: Admin) -> Response:
        cam = checked(await read_body(request, Camera), policy)
        if cam.id != camera_id:
            raise HTTPException(422, "the body's id must match the path")
        await registry.put_camera(cam)
        return json_response(await view(cam, who))

    @r.patch("/{camera_id}")
    async def change_camera(camera_id: CameraId, request: Request, who: Admin) -> Response:
        current = await existing(camera_id)
        cam = checked(await read_body(request, Camera, patch_of=current), policy)
        if cam.id != camera_id:
            raise HTTPException(422, "a camera's id cannot change")
        await registry.put_camera(cam)
        return json_response(await view(cam, who))

    @r.delete("/{camera_id}", status_code=204)
    async def remove_camera(camera_id: CameraId, who: Admin) -> Response:
        if not await registry.remove_camera(camera_id):
            raise HTTPException(404, f"unknown camera {camera_id!r}")
        return Response(status_code=204)

    @r.get("/{camera_id}/status")
    async def camera_status(camera_id: CameraId, who: Viewer) -> Response:
        await existing(camera_id)
        return json_response(status_for(await status_of(camera_id), who))

    @r.get("/{camera_id}/snapshot.jpg")
    async def snapshot(camera_id: CameraId, who: Viewer) -> Response:
        rows = await bus.range(bus.keys.frames(camera_id), messages.FrameStreamItem, reverse=True, count=5)
        for _, msg in rows:
            if isinstance(msg, messages.Frame):
                return Response(msg.jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})
        raise HTTPException(404, "no frame yet for this camera")

    return r
