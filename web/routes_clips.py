"""Clips: every packet, event and alert as a playable, downloadable WebM.

A packet's clip is the recorder's (pre/post-roll, every sampled frame); without one (the
recorder is off, behind, or the clip expired) it is made now from the packet's keyframes.
An alert's clip joins the clips of the packets that opened and updated it, in order."""

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path as PathParam, Query, Response

from bus.clips import Clip, ClipStore, clip_of_packet, join_webm
from bus.connection import Bus
from web import lookups
from web.auth import Principal
from web.deps import Access

ItemId = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_.:-]{1,200}$")]
Download = Annotated[bool, Query(description="send as an attachment (Save as...)")]
MAX_ALERT_PACKETS = 30  # an alert's clip is at most its last this many packets


def clips_router(bus: Bus, access: Access) -> APIRouter:
    r = APIRouter(prefix="/api", tags=["clips"])
    Viewer = Annotated[Principal, Depends(access.viewer)]
    store = ClipStore(bus)

    async def clip_for(packet_id: str) -> Clip:
        clip = await store.get(packet_id)
        if clip is not None:
            return clip
        packet = await lookups.load_packet(bus, packet_id)
        if not packet.frames:
            raise HTTPException(404, "this packet has no frames")
        return await asyncio.to_thread(clip_of_packet, packet)  # encoding: CPU, off the loop

    def webm(data: bytes, name: str, download: bool, clip: Clip | None = None) -> Response:
        headers = {"Cache-Control": "private, max-age=300",
                   "Content-Disposition": f'{"attachment" if download else "inline"}; filename="{name}.webm"'}
        if clip is not None:
            headers["Vigil-Clip-Source"] = clip.source  # recording (with pre/post-roll) or keyframes
        return Response(data, media_type="video/webm", headers=headers)

    @r.get("/packets/{packet_id}/clip.webm", response_class=Response)
    async def packet_clip(packet_id: ItemId, who: Viewer, download: Download = False) -> Response:
        clip = await clip_for(packet_id)
        return webm(clip.webm, f"vigil-{packet_id}", download, clip)

    @r.get("/events/{event_id}/clip.webm", response_class=Response)
    async def event_clip(event_id: ItemId, who: Viewer, download: Download = False) -> Response:
        event = await lookups.load_event(bus, event_id)
        clip = await clip_for(event.packet_id)
        return webm(clip.webm, f"vigil-{event_id}", download, clip)

    @r.get("/alerts/{alert_id}/clip.webm", response_class=Response)
    async def alert_clip(alert_id: ItemId, who: Viewer, download: Download = False) -> Response:
        alert = await lookups.latest_alert(bus, alert_id)
        ids = list(dict.fromkeys([*alert.packet_ids, *(e.removeprefix("evt-") for e in alert.event_ids)]))
        clips: list[Clip] = []
        for pid in ids:
            try:
                clips.append(await clip_for(pid))
            except HTTPException:
                continue  # trimmed by retention: the rest still plays
        if not clips:
            raise HTTPException(404, "no clip for this alert (its packets were trimmed by retention)")
        clips.sort(key=lambda c: c.start)
        clips = clips[-MAX_ALERT_PACKETS:]
        # The recorder makes consecutive clips of a camera contiguous; a clip that overlaps the
        # previous one (keyframe fallbacks, several recorders) is left out rather than shown twice.
        kept = [clips[0]]
        for c in clips[1:]:
            if c.start >= kept[-1].end - 0.05:
                kept.append(c)
        data = await asyncio.to_thread(join_webm, [c.webm for c in kept])
        return webm(data, f"vigil-{alert_id}", download, kept[0])

    return r
