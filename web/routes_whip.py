"""WHIP signalling (RFC 9725): publishers POST an SDP offer for a camera and get the answer.

The media itself terminates in the ingest worker that holds the camera's lease; this router
only relays offers and session ends through Redis (web and ingest never import each other):
RPUSH the request on `whip:req:{camera}`, then BLPOP `whip:reply:{request id}` with a timeout.
"""


import asyncio
import time
import uuid
from typing import Annotated, Any, AsyncIterator, Callable

from fastapi import APIRouter, Depends, HTTPException, Path as PathParam, Request, Response

from bus import messages
from bus.connection import Bus
from bus.messages import WhipReply, WhipRequest
from bus.names import ID_PATTERN
from bus.registry import Registry

CameraId = Annotated[str, PathParam(pattern=ID_PATTERN)]
SessionId = Annotated[str, PathParam(pattern=r"^[0-9a-f]{32}$")]
MAX_SDP = 64 * 1024
REPLY_TIMEOUT_S = 10
MAX_RELAYS = 32  # signalling requests waiting for an ingest worker at once, per web process


def whip_router(bus: Bus, principal_dep: Callable[..., Any]) -> APIRouter:
    router = APIRouter(tags=["whip"])
    registry = Registry(bus)

    slots = asyncio.Semaphore(MAX_RELAYS)

    async def bounded() -> AsyncIterator[None]:
        # Each request holds a Redis connection from the pool every stage of this process
        # shares, a relay for up to REPLY_TIMEOUT_S: a flood of publishers is told to come
        # back (before it touches Redis at all) instead of starving the stages.
        if slots.locked():
            raise HTTPException(503, "too many WHIP requests in progress; try again", headers={"Retry-After": "2"})
        async with slots:
            yield

    def publisher(who: Annotated[Any, Depends(principal_dep)], _: Annotated[None, Depends(bounded)]) -> Any:
        # Publishing injects video into the analysis: an admin token, not a viewer's.
        if not who.can("admin"):
            raise HTTPException(403, "publishing needs an admin token")
        return who

    async def relay(camera: str, req: WhipRequest) -> WhipReply:
        pipe = bus.r.pipeline(transaction=False)
        key = bus.keys.whip_requests(camera)
        pipe.rpush(key, messages.encode(req))
        pipe.expire(key, 60)
        await pipe.execute()
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        while time.monotonic() < deadline:
            # Short waits: a blocking call longer than the client's socket timeout fails.
            got = await bus.r.blpop([bus.keys.whip_reply(req.id)], timeout=1)
            if got:
                return messages.decode(got[1], WhipReply)
        raise HTTPException(504, "the ingest worker for this camera did not answer in time",
                            headers={"Retry-After": "5"})

    @router.post("/api/whip/{camera_id}", status_code=201, response_class=Response)
    async def publish(camera_id: CameraId, request: Request,
                      who: Annotated[Any, Depends(publisher)]) -> Response:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/sdp":
            raise HTTPException(415, "the body must be an SDP offer (Content-Type: application/sdp)")
        body = await request.body()
        if len(body) > MAX_SDP:
            raise HTTPException(413, "SDP offer too large")
        try:
            sdp = body.decode("utf-8")
        except UnicodeDecodeError:
            raise HTTPException(400, "SDP offer is not UTF-8") from None
        if not sdp.startswith("v=0"):
            raise HTTPException(400, "not an SDP offer")
        cam = await registry.camera(camera_id)
        if cam is None:
            raise HTTPException(404, "unknown camera")
        if not (cam.url.startswith("whip://") or cam.url == "whip"):
            raise HTTPException(409, "this camera is not a WHIP camera (its url must be whip://)")
        if not cam.enabled:
            raise HTTPException(409, "this camera is disabled")
        if not await bus.r.exists(bus.keys.ingest_lease(camera_id)):
            raise HTTPException(503, "no ingest worker runs this camera yet", headers={"Retry-After": "2"})
        req = WhipRequest(id=uuid.uuid4().hex, camera=camera_id, op="offer", sdp=sdp,
                          deadline=time.time() + REPLY_TIMEOUT_S)
        reply = await relay(camera_id, req)
        if reply.status != 201:
            raise HTTPException(reply.status, reply.error or "offer refused")
        location = f"/api/whip/{camera_id}/{reply.session}"
        return Response(reply.sdp, status_code=201, media_type="application/sdp",
                        headers={"Location": location, "ETag": f'"{reply.session}"'})

    @router.delete("/api/whip/{camera_id}/{session}", response_class=Response)
    async def end(camera_id: CameraId, session: SessionId, who: Annotated[Any, Depends(publisher)]) -> Response:
        cam = await registry.camera(camera_id)
        if cam is None or not (cam.url.startswith("whip://") or cam.url == "whip"):
            raise HTTPException(404, "no such WHIP camera")
        if not await bus.r.exists(bus.keys.ingest_lease(camera_id)):
            raise HTTPException(503, "no ingest worker runs this camera", headers={"Retry-After": "2"})
        req = WhipRequest(id=uuid.uuid4().hex, camera=camera_id, op="delete", session=session,
                          deadline=time.time() + REPLY_TIMEOUT_S)
        reply = await relay(camera_id, req)
        if reply.status != 200:
            raise HTTPException(reply.status, reply.error or "cannot end this session")
        return Response(status_code=200)

    @router.patch("/api/whip/{camera_id}/{session}", response_class=Response)
    async def trickle(camera_id: CameraId, session: SessionId, who: Annotated[Any, Depends(publisher)]) -> Response:
        # Candidates are all in the offer/answer (aiortc gathers before answering).
        raise HTTPException(405, "trickle ICE is not supported; send every candidate in the offer")

    return router
