"""The one codec: binary-safe msgpack on the bus, versioned JSON in public."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone

import msgspec
import pytest

from bus import messages
from bus.messages import (Alert, Camera, Event, EventFrame, Frame, FrameStreamItem, LabelRule, MotionSummary, Packet,
                          PacketFrame, PublicMessage, StreamEnd)


def _frame() -> Frame:
    return Frame(camera="c1", seq=3, ts=1.25, wall=1.7e9, width=448, height=252, jpeg=os.urandom(5000) + b"\x00\xff",
                 luma=bytes(range(256)) * 4, luma_w=32, luma_h=32, src_width=768, src_height=432, keyframe=True)


def test_frame_roundtrip_is_binary_safe():
    f = _frame()
    back = messages.decode(messages.encode(f), FrameStreamItem)
    assert back == f and back.jpeg == f.jpeg and back.v == 1


def test_stream_end_shares_the_frames_stream():
    end = StreamEnd(camera="c1", wall=1.0, frames=10, error="boom")
    assert messages.decode(messages.encode(end), FrameStreamItem) == end


def test_packet_roundtrip():
    p = Packet(id="c1-1-0", camera="c1", reason="onset", width=448, height=252,
               frames=[PacketFrame(seq=i, ts=i * 0.2, wall=1.7e9 + i, temporal_id=i * 2, motion=0.1, jpeg=b"\xff\xd8" * 10)
                       for i in range(6)],
               temporal_ids=[[0, 2, 4, 6, 8, 10]], motion=MotionSummary(area=0.1, boxes=[[0.1, 0.2, 0.3, 0.4]]), created=1.0)
    back = messages.decode(messages.encode(p), Packet)
    assert back == p and back.frame_ts == [f.ts for f in p.frames]


def test_public_json_is_versioned_and_tagged():
    t = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    e = Event(id="evt-x", camera="c1", start=t, end=t, packet_id="x", reason="motion", summary="s", labels=["person"],
              motion=MotionSummary(area=0.0), backend="cpu", model="m", latency_ms=1.0, visual_tokens=64,
              frames=[EventFrame(ts=0.0, temporal_id=0, url="/u")])
    data = json.loads(messages.to_json(e))
    assert data["v"] == 1 and data["type"] == "event" and data["start"] == "2026-01-02T03:04:05Z"
    a = Alert(id="a", state="open", rule="r", camera="c1", severity="warning", title="t", message="m", event_ids=["evt-x"],
              first_seen=t, last_seen=t, snapshot_url="/u")
    # One union decodes either public message.
    assert messages.decode(messages.encode(a), PublicMessage) == a
    assert messages.decode(messages.encode(e), PublicMessage) == e


def test_garbage_is_a_clear_error():
    with pytest.raises(msgspec.DecodeError):
        messages.decode(b"\x93garbage", Packet)


def test_registry_types_validate():
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"id": "../etc", "url": "x"}, Camera)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"id": "r", "label": "person", "min_count": 0}, LabelRule)
