"""WebRTC publishers via WHIP: the media terminates here, in the ingest process (aiortc).

The web process never talks to this one directly. It pushes each signalling request (an SDP
offer, or a session to end) onto `whip:req:{camera}` in Redis; the ingest worker holding the
camera's lease answers on `whip:reply:{request id}`. aiortc decodes the video (VP8 or H.264)
in its own thread; decoded frames cross to the camera's decode thread through a small queue
that drops the oldest frame when full (a live source: the freshest frame wins).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
import uuid
from typing import Iterator

import av
import msgspec
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from bus import messages
from bus.connection import Bus
from bus.messages import WhipReply, WhipRequest
from ingest.sources.base import Decoded, Source, SourceError

log = logging.getLogger("vigil.ingest")
# aioice logs every candidate pair check at INFO: noise in an operator's log.
logging.getLogger("aioice").setLevel(logging.WARNING)

#: What a publisher may send. Audio is accepted and discarded (Vigil analyses video only).
VIDEO_CODECS = ("VP8", "H264")
_END = object()  # queue marker: the session is over


class _Session:
    def __init__(self, sid: str, pc: RTCPeerConnection) -> None:
        self.id = sid
        self.pc = pc
        self.readers: list[asyncio.Task] = []
        self.started = time.time()


class WhipSource(Source):
    """Frames from whichever WHIP publisher currently holds the camera (one at a time; a new
    offer replaces the previous session, as after a publisher's network drop)."""

    live = True
    backoff = False  # frames() itself waits for the next publisher

    def __init__(self, camera_id: str, *, stall_s: float = 10.0, ice_servers: list[str] | None = None,
                 queue_frames: int = 8) -> None:
        self.camera_id = camera_id
        self.stall_s = stall_s
        self.ice_servers = ice_servers or []
        self._frames: queue.Queue[object] = queue.Queue(maxsize=queue_frames)
        self._session: _Session | None = None
        self._stalled = threading.Event()

    def describe(self) -> str:
        return f"whip {self.camera_id}"

    # -- decode thread side -------------------------------------------------------------
    def frames(self, stop: threading.Event) -> Iterator[Decoded]:
        first: float | None = None
        last_ts = 0.0
        last_frame = time.monotonic()
        while not stop.is_set():
            try:
                item = self._frames.get(timeout=0.2)
            except queue.Empty:
                if first is not None and time.monotonic() - last_frame > self.stall_s:
                    self._stalled.set()  # the event loop side closes the silent session
                    raise SourceError(f"stalled: no frame from the WHIP publisher for {self.stall_s:g}s")
                continue  # no publisher yet: keep waiting (state stays "connecting")
            if item is _END:
                if first is None:
                    continue  # a session that never sent a frame: wait for the next one
                raise SourceError("WHIP session ended")
            assert isinstance(item, av.VideoFrame)
            t = item.time if item.time is not None else last_ts + 1 / 30
            if first is None:
                first = t
            ts = max(t - first, last_ts)
            last_ts = ts
            last_frame = time.monotonic()
            yield Decoded(item, ts, bool(item.key_frame))

    def _offer_frame(self, item: object) -> None:
        try:
            self._frames.put_nowait(item)
        except queue.Full:
            try:
                self._frames.get_nowait()  # drop the oldest
            except queue.Empty:
                pass
            self._frames.put_nowait(item)

    # -- event loop side ------------------------------------------------------------------
    async def signalling(self, bus: Bus) -> None:
        key = bus.keys.whip_requests(self.camera_id)
        try:
            while True:
                if self._stalled.is_set():
                    self._stalled.clear()
                    await self._end_session()
                got = await bus.r.blpop([key], timeout=1)
                if not got:
                    continue
                try:
                    req = messages.decode(got[1], WhipRequest)
                except msgspec.DecodeError:
                    log.warning("camera %s: unreadable WHIP request dropped", self.camera_id)
                    continue
                if req.deadline and req.deadline < time.time():
                    continue  # nobody waits for this answer any more
                reply = await self._handle(req)
                rkey = bus.keys.whip_reply(req.id)
                pipe = bus.r.pipeline(transaction=False)
                pipe.rpush(rkey, messages.encode(reply))
                pipe.expire(rkey, 30)
                await pipe.execute()
        finally:
            await self._end_session()

    async def _handle(self, req: WhipRequest) -> WhipReply:
        if req.op == "delete":
            if self._session is None or self._session.id != req.session:
                return WhipReply(id=req.id, status=404, error="no such WHIP session")
            await self._end_session()
            return WhipReply(id=req.id, status=200, session=req.session)
        try:
            return await self._answer(req)
        except Exception as exc:  # a bad offer must not take the camera down
            log.warning("camera %s: WHIP offer rejected: %s", self.camera_id, exc)
            await self._end_session()
            return WhipReply(id=req.id, status=400, error=(
                f"cannot answer this offer ({type(exc).__name__}: {exc}); accepted video codecs: "
                f"{', '.join(VIDEO_CODECS)}")[:400])

    async def _answer(self, req: WhipRequest) -> WhipReply:
        offer = RTCSessionDescription(sdp=req.sdp, type="offer")
        if "m=video" not in req.sdp:
            return WhipReply(id=req.id, status=400, error="the offer has no video")
        await self._end_session()  # one publisher per camera: the newest wins
        config = RTCConfiguration(iceServers=[RTCIceServer(u) for u in self.ice_servers])
        pc = RTCPeerConnection(configuration=config)
        session = _Session(uuid.uuid4().hex, pc)
        self._session = session

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            session.readers.append(asyncio.ensure_future(self._read(session, track)))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed") and self._session is session:
                log.info("camera %s: WHIP session %s %s", self.camera_id, session.id[:8], pc.connectionState)
                await self._end_session()

        await pc.setRemoteDescription(offer)
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)  # aiortc gathers every candidate first: no trickle
        log.info("camera %s: WHIP session %s started", self.camera_id, session.id[:8])
        return WhipReply(id=req.id, status=201, sdp=pc.localDescription.sdp, session=session.id)

    async def _read(self, session: _Session, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                if track.kind == "video" and self._session is session:
                    self._offer_frame(frame)
        except MediaStreamError:
            pass  # the publisher stopped this track

    async def _end_session(self) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        for task in session.readers:
            task.cancel()
        await asyncio.gather(*session.readers, return_exceptions=True)
        await session.pc.close()
        self._offer_frame(_END)
        log.info("camera %s: WHIP session %s ended", self.camera_id, session.id[:8])
