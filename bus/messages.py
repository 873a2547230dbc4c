"""The one module that defines what travels on the bus.

Messages are versioned (`v`), typed msgspec structs. On the bus they are msgpack (binary-safe:
JPEG and luma bytes travel inside); the public JSON (websocket, webhooks, REST) is the same
struct encoded as JSON, with bytes fields never part of a public type.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Annotated, Any, Literal, TypeVar, Union

import msgspec

SCHEMA_VERSION = 1

from bus.names import ID_PATTERN

Id = Annotated[str, msgspec.Meta(pattern=ID_PATTERN)]
# Bounds on every number a user can send: a count of 10**30 or a span of 1e300 seconds is a
# mistake (or an attack), and unbounded ints do not even fit the bus encoding.
DAY_S = 86400.0
MAX_SPAN_S = 30 * DAY_S
MAX_COUNT = 10_000
Reason = Literal["onset", "motion", "heartbeat", "flush"]
Severity = Literal["info", "warning", "critical"]
AlertState = Literal["open", "update", "resolved"]


def utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


# --------------------------------------------------------------------------- shared state
class Camera(msgspec.Struct, kw_only=True, tag="camera", tag_field="type", forbid_unknown_fields=True):
    """A camera in the registry. `url` may hold credentials: never log or serve it raw.

    Config and API input: an unknown (misspelt) key is an error, never silently ignored."""

    v: int = SCHEMA_VERSION
    id: Id
    name: Annotated[str, msgspec.Meta(max_length=200)] = ""
    url: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]
    sample_fps: Annotated[float, msgspec.Meta(gt=0, le=60)] = 5.0
    # "realtime" paces files like a live camera; "fast" decodes as fast as it can (replays).
    pace: Literal["realtime", "fast"] = "realtime"
    loop: bool = False
    enabled: bool = True
    context: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    # Stop after this much stream time (replays, tests); None: until the source ends.
    duration: Annotated[float, msgspec.Meta(gt=0, le=DAY_S * 3650)] | None = None
    # -- live sources (appended; defaults keep older registry entries valid) --------------
    # RTSP transport: TCP survives NAT and loss better; UDP has less latency on a clean LAN.
    transport: Literal["tcp", "udp"] = "tcp"
    # Seconds to wait for a connection to open, and for data once streaming.
    open_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=120)] = 10.0
    read_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=120)] = 10.0
    # Stall watchdog: no decoded frame for this long (while data may still trickle) -> reconnect.
    stall_s: Annotated[float, msgspec.Meta(gt=0, le=600)] = 10.0
    # Decode only keyframes (codec skip_frame=NONKEY): "auto" turns it on once the measured
    # keyframe rate is at or above sample_fps; "on" always; "off" decodes every frame.
    keyframes_only: Literal["off", "on", "auto"] = "off"


class TimeWindow(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Local wall-clock window in which a rule is active, e.g. 22:00-06:00 on weekdays."""

    start: Annotated[str, msgspec.Meta(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
    end: Annotated[str, msgspec.Meta(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
    days: Annotated[list[Annotated[int, msgspec.Meta(ge=0, le=6)]], msgspec.Meta(max_length=7)] = []  # 0 = Monday; empty: every day


class _RuleBase(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    v: int = SCHEMA_VERSION
    id: Id
    cameras: Annotated[list[Id], msgspec.Meta(max_length=256)] = []  # empty: every camera
    severity: Severity = "warning"
    title: Annotated[str, msgspec.Meta(max_length=200)] = ""
    # A match within this many seconds of the last one updates the open alert.
    consolidate_s: Annotated[float, msgspec.Meta(ge=0, le=MAX_SPAN_S)] = 30.0
    # No match for this long resolves the alert.
    quiet_s: Annotated[float, msgspec.Meta(ge=0, le=MAX_SPAN_S)] = 15.0
    enabled: bool = True
    # Active only inside these local-time windows; empty: always.
    schedule: Annotated[list[TimeWindow], msgspec.Meta(max_length=32)] = []
    # This many matching packets in a row (per camera, or group) before an alert opens.
    min_consecutive: Annotated[int, msgspec.Meta(ge=1, le=100)] = 1
    # No new alert for this rule and camera until this long after the last notification sent.
    cooldown_s: Annotated[float, msgspec.Meta(ge=0, le=MAX_SPAN_S)] = 0.0
    # Two-phase: an onset packet with motion evidence opens the alert at once; the verdict
    # (model or cpu backend) then confirms it or resolves it as not confirmed, same id.
    fast: bool = False
    # Fast rules: how long the verdict may take before the alert resolves as not confirmed.
    confirm_s: Annotated[float, msgspec.Meta(gt=0, le=DAY_S)] = 20.0
    # Cameras watching one scene: one alert per rule and group instead of per camera.
    group: Annotated[str, msgspec.Meta(pattern=r"^([A-Za-z0-9][A-Za-z0-9_.-]{0,63})?$")] = ""
    # Fast rules and motion/zone rules: named zones (scheduler settings) the motion must touch.
    zones: Annotated[list[Annotated[str, msgspec.Meta(min_length=1, max_length=64)]], msgspec.Meta(max_length=64)] = []
    # An open alert notifies again only when something an operator cares about changes (severity,
    # a new label, a higher count, a new camera of the group, the verdict), and then at most once
    # per this many seconds of evidence; everything in between is still folded into the alert
    # (API, dashboard) without a notification. 0: every such change notifies at once.
    update_every_s: Annotated[float, msgspec.Meta(ge=0, le=MAX_SPAN_S)] = 60.0


class LabelRule(_RuleBase, tag="label", tag_field="kind"):
    """Structured rule: `label` seen at least `min_count` times in one packet's frame."""

    label: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    min_count: Annotated[int, msgspec.Meta(ge=1, le=MAX_COUNT)] = 1


class PromptRule(_RuleBase, tag="prompt", tag_field="kind"):
    """Natural-language rule answered by the model ("a person climbs the fence").

    The text is data inside the prompt, never instructions to Vigil."""

    prompt: Annotated[str, msgspec.Meta(min_length=3, max_length=500)]
    # Re-ask with thinking enabled when the fast answer is uncertain (or always, if critical).
    think: bool = False


class CountRule(_RuleBase, tag="count", tag_field="kind"):
    """Structured rule: how many `label`s one packet shows is within [min, max]."""

    label: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    min: Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNT)] = 1
    max: Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNT)] | None = None


class ZoneRule(_RuleBase, tag="zone", tag_field="kind"):
    """Structured rule: motion touched one of `zones` (and, if set, `label` was seen)."""

    label: Annotated[str, msgspec.Meta(max_length=64)] = ""
    min_area: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0


class MotionRule(_RuleBase, tag="motion", tag_field="kind"):
    """Structured rule: the moving share of the image is at least `min_area`."""

    min_area: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.01


class DwellRule(_RuleBase, tag="dwell", tag_field="kind"):
    """Structured rule: `label` (or, if empty, motion) stays, in `zones` if set, for `min_s`."""

    label: Annotated[str, msgspec.Meta(max_length=64)] = ""
    min_s: Annotated[float, msgspec.Meta(gt=0, le=DAY_S)] = 30.0


Rule = Union[LabelRule, PromptRule, CountRule, ZoneRule, MotionRule, DwellRule]


# --------------------------------------------------------------------------- frames
class Frame(msgspec.Struct, kw_only=True, tag="frame", tag_field="type"):
    """One sampled frame: a low-res luma plane for motion plus a model-size JPEG."""

    v: int = SCHEMA_VERSION
    camera: str
    seq: int  # index of this sampled frame since the source opened
    ts: float  # seconds on the source's own clock (pts; for a file: from its start)
    wall: float  # epoch seconds of capture
    width: int  # of the JPEG (<= 448x448, aspect kept)
    height: int
    jpeg: bytes
    luma: bytes  # uint8 plane, luma_w x luma_h
    luma_w: int
    luma_h: int
    src_width: int
    src_height: int
    keyframe: bool = False


class StreamEnd(msgspec.Struct, kw_only=True, tag="end", tag_field="type"):
    """The source ended (file finished, or gave up): the scheduler flushes what it holds."""

    v: int = SCHEMA_VERSION
    camera: str
    wall: float
    frames: int
    error: str = ""


FrameStreamItem = Union[Frame, StreamEnd]


# --------------------------------------------------------------------------- ingest state
CameraState = Literal["connecting", "streaming", "retrying", "ended", "error", "stopped"]


class CameraStatus(msgspec.Struct, kw_only=True):
    """Per-camera ingest status, stored as JSON under `status:camera:{id}` (short TTL, so a
    camera nobody runs shows no status). Never holds a credential: `source` is redacted."""

    v: int = SCHEMA_VERSION
    camera: str
    state: CameraState
    source: str = ""  # redacted URL or file name
    worker: str = ""  # ingest worker id that owns the camera (lease holder)
    last_error: str = ""
    next_attempt: float | None = None  # epoch seconds of the next reconnect (state "retrying")
    reconnects: int = 0
    fps_in: float = 0.0  # decoded frames per second (recent)
    fps_out: float = 0.0  # sampled frames written to the bus per second (recent)
    decoded: int = 0
    sampled: int = 0
    written: int = 0
    dropped: int = 0  # sampled frames dropped because Redis/writer fell behind (live only)
    last_frame_age_s: float = -1.0  # seconds since the last frame was written; -1: none yet
    last_ts: float = 0.0  # stream time of the last frame (a new owner continues from here)
    next_seq: int = 0  # sequence number of the next sampled frame (ditto)
    keyframes_only: bool = False
    updated: float = 0.0
    last_error_at: float | None = None  # epoch seconds of last_error (it stays after recovery)
    # Times a stream that had delivered frames was lost. `reconnects` counts every retry,
    # failed opens included, so it grows with the length of an outage; this counts outages.
    outages: int = 0


class WhipRequest(msgspec.Struct, kw_only=True, tag="whip", tag_field="type"):
    """Web -> ingest owner of `camera`: an SDP offer to answer, or a session to end."""

    v: int = SCHEMA_VERSION
    id: str  # request id; the reply goes to whip:reply:{id}
    camera: str
    op: Literal["offer", "delete"]
    sdp: str = ""
    session: str = ""
    deadline: float = 0.0  # epoch seconds after which nobody waits for the reply


class WhipReply(msgspec.Struct, kw_only=True, tag="whip-reply", tag_field="type"):
    v: int = SCHEMA_VERSION
    id: str
    status: int  # HTTP status for the publisher (201 created, 404 unknown session, 4xx/5xx)
    sdp: str = ""
    session: str = ""
    error: str = ""


# --------------------------------------------------------------------------- packets
class MotionSummary(msgspec.Struct, kw_only=True):
    area: float  # largest fraction of the image in motion over the packet's frames
    boxes: list[list[float]] = []  # [x, y, w, h] normalised to 0..1
    zones: list[str] = []  # named zones (scheduler settings) the motion touched


class PacketFrame(msgspec.Struct, kw_only=True):
    seq: int
    ts: float
    wall: float
    temporal_id: int
    motion: float
    jpeg: bytes


class Packet(msgspec.Struct, kw_only=True, tag="packet", tag_field="type"):
    """Up to six same-size frames of one camera, the unit of MiniCPM-V 4.5's 3D resampler."""

    v: int = SCHEMA_VERSION
    id: str
    camera: str
    reason: Reason
    width: int
    height: int
    frames: list[PacketFrame]
    temporal_ids: list[list[int]]
    motion: MotionSummary
    created: float  # epoch seconds when the scheduler emitted it
    activity: str = ""  # the activity it belongs to (ActivityNote.activity); "" for heartbeats

    @property
    def frame_ts(self) -> list[float]:
        return [f.ts for f in self.frames]


ActivityState = Literal["start", "packet", "end", "evidence"]


class ActivityNote(msgspec.Struct, kw_only=True, tag="activity", tag_field="type"):
    """What the scheduler says about one camera's activity, on the `activities` stream, in
    capture order per camera: `start` the moment it begins (the onset evidence, before any
    packet), `packet` for each packet of it (published before the packet itself), `end` when
    motion has stayed below `end_area` for `post_roll_s` (or the source ended or stalled).

    `evidence` is for onset detectors (not the scheduler): labels and counts seen on the
    onset frame, for the same activity; the alerts stage folds them into its onset alerts.
    Capture times are epoch seconds (`wall`) and seconds on the source's clock (`ts`)."""

    v: int = SCHEMA_VERSION
    camera: str
    activity: str  # "<camera>-<frames-stream id of the first moving frame>"
    state: ActivityState
    onset_wall: float  # capture time of the first moving frame
    onset_ts: float
    wall: float  # start: the frame that confirmed the onset; packet: its last frame; end: last frame
    ts: float
    motion: MotionSummary = msgspec.field(default_factory=lambda: MotionSummary(area=0.0))
    packet_id: str = ""  # start: the onset packet (it follows within onset_budget_s); packet: that packet
    packet_start: float = 0.0  # packet: capture time of its first frame
    packets: int = 0  # packets of this activity published so far (end: all of them)
    # start: the frame with the most motion at onset, model size, for a detector at onset.
    jpeg: bytes = b""
    width: int = 0
    height: int = 0
    labels: list[str] = []  # evidence
    counts: dict[str, int] = {}  # evidence
    source: str = ""  # evidence: who saw it (e.g. "cpu:coco")
    created: float = 0.0  # epoch seconds when it was emitted


class PacketSkipped(msgspec.Struct, kw_only=True, tag="packet-skipped", tag_field="type"):
    """The analyzer will never write an event for this packet (it went stale in the queue):
    whoever waits for that packet's verdict stops waiting."""

    v: int = SCHEMA_VERSION
    camera: str
    packet_id: str
    wall: float  # capture time of the packet's last frame
    reason: Literal["stale"] = "stale"
    at: float = 0.0


# --------------------------------------------------------------------------- events (public)
class RuleMatch(msgspec.Struct, kw_only=True):
    rule: str
    match: bool
    confidence: float
    evidence: str


class Detection(msgspec.Struct, kw_only=True):
    """One object an object detector found in one frame of a packet."""

    label: str  # COCO class name ("person", "car", ...), or "moving object" for motion nothing explained
    score: float  # 0..1
    box: list[float]  # [x, y, w, h] normalised to 0..1 of the frame, like motion boxes
    frame: int = 0  # index into the packet's (and the event's) frames


class EventFrame(msgspec.Struct, kw_only=True):
    ts: float
    temporal_id: int
    url: str


class Event(msgspec.Struct, kw_only=True, tag="event", tag_field="type"):
    v: int = SCHEMA_VERSION
    id: str
    camera: str
    start: datetime
    end: datetime
    packet_id: str
    reason: Reason
    summary: str
    labels: list[str]
    counts: dict[str, int] = {}
    motion: MotionSummary
    # Boxes of what a detector found (the cpu backend), per analysed frame; empty for models
    # that name objects without positions.
    objects: list[Detection] = []
    rules: list[RuleMatch] = []
    backend: str
    model: str
    latency_ms: float
    visual_tokens: int
    frames: list[EventFrame]
    status: Literal["ok", "unparsed", "error"] = "ok"
    raw: str = ""


class Alert(msgspec.Struct, kw_only=True, tag="alert", tag_field="type"):
    v: int = SCHEMA_VERSION
    id: str
    state: AlertState
    rule: str
    camera: str
    severity: Severity
    title: str
    message: str
    event_ids: list[str]
    first_seen: datetime
    last_seen: datetime
    snapshot_url: str
    seq: int = 0  # change number within this alert's life (0 = open)
    # Two-phase alerts: "onset" (opened from motion evidence), "confirmed" (the verdict
    # agreed), "unconfirmed" (resolved because it did not); "" for ordinary alerts.
    phase: Literal["", "onset", "confirmed", "unconfirmed"] = ""
    packet_ids: list[str] = []  # packets whose evidence opened or updated the alert
    cameras: list[str] = []  # rules with a camera group: every camera that matched
    # False: evidence folded into the alert without a notification (the dashboard and the API
    # show it; webhooks and MQTT send only changes with notify true).
    notify: bool = True
    labels: list[str] = []  # every label the alert's evidence showed
    counts: dict[str, int] = {}  # the highest count of each label in one packet
    event_count: int = 0  # events folded into the alert (event_ids keeps the latest 50)


PublicMessage = Union[Event, Alert]


class AlertCommand(msgspec.Struct, kw_only=True, tag="alert-command", tag_field="type"):
    """An operator's action on an alert (from the API), carried out by the alerts stage, which
    alone changes alert state."""

    v: int = SCHEMA_VERSION
    alert_id: str
    action: Literal["resolve"]
    by: str
    at: float


# --------------------------------------------------------------------------- replay
class ReplayJob(msgspec.Struct, kw_only=True, tag="replay", tag_field="type"):
    """Run one rule over stored packets of a time range: how users tune prompts and rules."""

    v: int = SCHEMA_VERSION
    id: str
    rule: Rule
    camera: str | None = None
    since: float  # epoch seconds (packet creation time)
    until: float
    limit: int = 50
    created: float


class ReplayResult(msgspec.Struct, kw_only=True):
    packet_id: str
    camera: str
    start: datetime
    match: bool
    confidence: float
    evidence: str
    summary: str
    frames: list[EventFrame]

# --------------------------------------------------------------------------- codec
_msgpack = msgspec.msgpack.Encoder()
_json = msgspec.json.Encoder()
T = TypeVar("T")
_decoders: dict[object, msgspec.msgpack.Decoder] = {}


def encode(msg: msgspec.Struct) -> bytes:
    """Bus encoding: compact and binary-safe."""
    return _msgpack.encode(msg)


def decode(data: bytes, kind: type[T]) -> T:
    dec = _decoders.get(kind)
    if dec is None:
        dec = _decoders[kind] = msgspec.msgpack.Decoder(kind)
    return dec.decode(data)


def to_json(msg: msgspec.Struct) -> bytes:
    """Public encoding (websocket, webhook, REST, CLI --json)."""
    return _json.encode(msg)


def to_builtins(msg: msgspec.Struct) -> dict:
    return msgspec.to_builtins(msg)


def json_schema(kind: type) -> dict:
    return msgspec.json.schema(kind)


class Invalid(ValueError):
    """Input (a config section, an API body) that does not fit its type. `path` names the key
    the way the YAML spells it (`schedule.0.start`); `reason` never repeats the value."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.path, self.reason = path, reason


_AT = re.compile(r" - at `\$(.*)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(.*)`$")


def parse(data: Any, kind: type[T], *, strict: bool = True) -> T:
    """Validate builtins (decoded JSON or YAML) into `kind`; errors raise `Invalid`."""
    try:
        return msgspec.convert(data, kind, strict=strict)
    except msgspec.ValidationError as exc:
        text = str(exc)
        m = _AT.search(text)
        reason = text[: m.start()] if m else text
        path = re.sub(r"\[(\d+)\]", r".\1", m.group(1)).lstrip(".") if m else ""
        unknown = _UNKNOWN.match(reason)
        if unknown:
            path, reason = f"{path}.{unknown.group(1)}".lstrip("."), "unknown key"
        raise Invalid(path, reason) from None


# --------------------------------------------------------------------------- alert state
class AlertTrack(msgspec.Struct, kw_only=True):
    """Per rule and scope (camera or group) state of the alerts stage, kept in Redis."""

    v: int = SCHEMA_VERSION
    streak: int = 0  # consecutive matching packets
    streak_since: float = 0.0  # capture epoch of the first packet of the streak
    last_match: float = 0.0
    last_event: float = 0.0  # capture epoch of the last evaluated packet
    last_sent: float = 0.0  # capture epoch of the evidence of the last notification sent
    suppressed: int = 0  # matches held back by the cooldown since the last notification
    # last_sent before the open alert's onset: restored when the verdict rejects it, so a
    # false alarm never starts a cooldown.
    prev_sent: float = 0.0
    # A change worth a notification was folded in silently (update_every_s): the next one
    # that may notify carries it.
    dirty: bool = False
    # The activities (camera, activity id) whose evidence the open alert holds: while one goes
    # on the alert stays open; quiet time counts from the last one's end.
    bound: list[tuple[str, str]] = []
    # Onsets that came while the previous alert could not be closed yet (its last packets
    # still being analysed), oldest first: each is either bridged into that alert by its
    # verdicts or opened as soon as it resolves.
    held_onsets: list[ActivityNote] = []


# --------------------------------------------------------------------------- webhooks
WebhookEventName = Literal["alert.open", "alert.update", "alert.resolved", "event", "ping"]


class WebhookEndpoint(msgspec.Struct, kw_only=True, tag="webhook", tag_field="type", forbid_unknown_fields=True):
    """A webhook target in the registry. `secret` signs requests: never log or serve it."""

    v: int = SCHEMA_VERSION
    id: Id
    url: Annotated[str, msgspec.Meta(min_length=8, max_length=2048)]
    secret: Annotated[str, msgspec.Meta(min_length=16, max_length=256)]
    # Exact names, "alert.*" or "*". Default: every alert change, no raw events.
    events: list[Annotated[str, msgspec.Meta(pattern=r"^(\*|alert\.\*|alert\.(open|update|resolved)|event|ping)$")]] = msgspec.field(
        default_factory=lambda: ["alert.*"])
    cameras: list[Id] = []  # empty: every camera
    rules: list[Id] = []  # empty: every rule
    min_severity: Severity = "info"
    # SSRF guard: private, loopback and link-local targets are refused unless this is set.
    allow_private: bool = False
    enabled: bool = True
    description: Annotated[str, msgspec.Meta(max_length=200)] = ""


DeliveryStatus = Literal["pending", "delivering", "delivered", "dead"]
