"""Live view: `GET /api/cameras/{id}/live.mjpeg`, the camera's sampled frames as they are
written (multipart/x-mixed-replace, which an <img> plays with no script and no codec)."""

from typing import Annotated, AsyncIterator

import time

from fastapi import APIRouter, Depends, HTTPException, Path as PathParam, Request
from fastapi.responses import StreamingResponse

from bus.connection import Bus
from bus.names import ID_PATTERN
from bus.registry import Registry
from web.auth import Principal
from web.deps import Access
from web.live_frames import LiveFrames

CameraId = Annotated[str, PathParam(pattern=ID_PATTERN)]
BOUNDARY = "vigilframe"
KEEPALIVE_S = 5.0  # a stalled camera repeats its last frame this often, so proxies keep the stream


def _part(jpeg: bytes) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
            + jpeg + b"\r\n")


def live_router(bus: Bus, access: Access, live: LiveFrames) -> APIRouter:
    r = APIRouter(prefix="/api/cameras", tags=["cameras"])
    Viewer = Annotated[Principal, Depends(access.viewer)]
    registry = Registry(bus)

    @r.get("/{camera_id}/live.mjpeg", response_class=StreamingResponse,
           responses={200: {"content": {f"multipart/x-mixed-replace; boundary={BOUNDARY}": {}},
                            "description": "JPEG parts at the camera's sample rate until the client leaves"}})
    async def live_view(camera_id: CameraId, request: Request, who: Viewer) -> StreamingResponse:
        """The live view: every sampled frame ingest writes, as it is written. Costs one Redis
        reader per watched camera per web process, nothing while nobody watches."""
        if await registry.camera(camera_id) is None:
            raise HTTPException(404, f"unknown camera {camera_id!r}")

        async def parts() -> AsyncIterator[bytes]:
            viewer = live.watch(camera_id)
            try:
                last = await live.latest(camera_id)
                sent = time.monotonic()
                if last:
                    yield _part(last)
                while not live.closed:
                    jpeg = await viewer.next(1.0)
                    if live.closed:
                        break
                    if jpeg is None:
                        # A camera with no new frame: notice a viewer who left (a send would
                        # too, but none comes), and repeat the last frame now and then.
                        if await request.is_disconnected():
                            break
                        if last and time.monotonic() - sent > KEEPALIVE_S:
                            sent = time.monotonic()
                            yield _part(last)
                        continue
                    last, sent = jpeg, time.monotonic()
                    yield _part(jpeg)
            finally:
                live.leave(camera_id, viewer)

        return StreamingResponse(parts(), media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    return r
