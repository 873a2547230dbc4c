"""The alerts stage: rules over the scheduler's activities and the analyzer's events ->
alert lifecycle -> the `alerts` stream -> channels (webhooks, optional MQTT).

Inputs, each through a consumer group of the stage so nothing is lost across restarts:
- `activities` (group `alert-activity`): the scheduler's activity `start` (with its motion
  evidence, the moment the onset is confirmed), each `packet` of it, its `end`. A fast rule
  opens its alert from the start itself; the packets tell which verdicts are to come.
- `events` and `packets:skipped` (group `alerters`): verdicts, labels, counts, motion; and
  packets the analyzer will never analyse. A camera's events are applied in capture order
  (alerts/flow.py), so out-of-order workers change nothing.

An alert resolves only once the quiet time has passed on evaluated evidence: while an
activity goes on or its packets await their verdicts, the camera's quiet time does not count.

State per rule and scope (a camera, or a camera group) lives in Redis: the open alert and
an AlertTrack (streak, last notification sent); per camera, its Flow. Several alerts
processes may run: one holds the lifecycle lease and evaluates, the others stand by and take
over when it lapses; every change of one rule+scope (and of one camera's flow) also runs
under a short Redis lock, so even a leader that lost its lease cannot interleave writes.
Webhook sending runs in every process.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import time
from collections import OrderedDict
from typing import Union
from zoneinfo import ZoneInfo

import msgspec

from alerts import lifecycle
from alerts.channels import Channel
from alerts.flow import Flow
from alerts.leader import Leader
from alerts.locks import ScopeLocks
from alerts.rules import (
    Verdict, applies, condition, detector_evidence, in_schedule, onset_evidence, scope, verdicts_of,
)
from alerts.settings import AlertsSettings
from alerts.webhooks import WebhookChannel, seed_endpoints
from bus import messages
from bus.connection import Bus
from bus.metrics import StageMetrics
from bus.messages import ActivityNote, Alert, AlertCommand, AlertTrack, DwellRule, Event, PacketSkipped, Rule
from bus.registry import Registry

log = logging.getLogger("vigil.alerts")
CLAIM_IDLE_MS = 30_000  # the leader retries entries it failed on (left pending) after this
Verdicts = Union[Event, PacketSkipped]
EVENT_CACHE = 512  # events held for their turn, kept in memory too (else read back from the stream)
MAX_HELD = 8  # onsets waiting for the previous alert to close, per rule and scope
MAX_BOUND = 16  # activities an open alert remembers it is bound to


def _bind(track: AlertTrack, camera: str, activity: str) -> None:
    if activity and (camera, activity) not in track.bound:
        track.bound = (track.bound + [(camera, activity)])[-MAX_BOUND:]


class AlertsService:
    def __init__(self, bus: Bus, settings: AlertsSettings, consumer: str | None = None,
                 channels: list[Channel] | None = None) -> None:
        self.bus = bus
        self.s = settings
        self.registry = Registry(bus)
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.rules: dict[str, Rule] = {}
        self.locks = ScopeLocks(bus, settings.lock_ttl_s)
        self.tz = ZoneInfo(settings.timezone) if settings.timezone else None
        self.published = 0
        self.notified = 0
        self.suppressed = 0
        self.lost_verdicts = 0
        self.leader = Leader(bus, "alerts-lifecycle", self.consumer, settings.leader_ttl_s)
        self.leading = False
        self.metrics = StageMetrics(bus)
        self.webhooks = WebhookChannel(bus, settings.webhooks, self.consumer, settings.public_url)
        self.channels: list[Channel] = channels if channels is not None else self._channels()
        self._events: OrderedDict[str, Event] = OrderedDict()

    def _channels(self) -> list[Channel]:
        out: list[Channel] = [self.webhooks]
        if self.s.mqtt.enabled:
            from alerts.mqtt import MqttChannel  # optional extra: imported only when configured

            out.append(MqttChannel(self.bus, self.s.mqtt, self.consumer, self.s.public_url))
        return out

    # -- loops ---------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        k = self.bus.keys
        await self.bus.ensure_group(k.events, k.ALERTERS, start="0")
        # Activity starts older than onset_max_age_s cannot open anything: skip the backlog.
        start = f"{int((time.time() - self.s.onset_max_age_s) * 1000)}-0"
        await self.bus.ensure_group(k.activities, k.ACTIVITY, start=start)
        await self.bus.ensure_group(k.packets_skipped, k.ALERTERS, start=start)
        await seed_endpoints(self.bus, self.s.webhooks)
        for ch in self.channels:
            await ch.prepare()
        self.rules = await self.registry.rules()
        # The loops share a local stop: one failing ends its siblings (and this run, which the
        # runtime restarts) without stopping the whole process.
        local = asyncio.Event()
        tasks = [asyncio.create_task(c, name=n) for n, c in (
            ("alerts:lease", self._lease_loop(local)),
            ("alerts:events", self._events_loop(local)), ("alerts:activities", self._activity_loop(local)),
            ("alerts:tick", self._tick_loop(local)),
            *((f"alerts:{ch.name}", ch.run(local)) for ch in self.channels),
        )]
        try:
            stopper = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            for t in done:
                if t is not stopper and not t.cancelled() and t.exception():
                    raise t.exception()  # type: ignore[misc]
        finally:
            local.set()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _inputs(self):
        k = self.bus.keys
        return ((k.activities, k.ACTIVITY, ActivityNote, self.on_note),
                (k.events, k.ALERTERS, Event, self.on_event),
                (k.packets_skipped, k.ALERTERS, PacketSkipped, self.on_skip))

    async def _lease_loop(self, stop: asyncio.Event) -> None:
        """One process evaluates at a time, so each camera's input is taken in stream order;
        others stand by (and still send webhooks) and take over when the lease lapses."""
        try:
            while not stop.is_set():
                state = await self.leader.hold()
                if state == 2:
                    # Taking over: first what the previous leader read but never acked, in order.
                    for stream, group, kind, fn in self._inputs():
                        rows = await self.bus.autoclaim(stream, group, self.consumer, kind, min_idle_ms=0, count=1000)
                        await self._handle(stream, group, rows, fn)
                    log.info("alerts lifecycle led by %s", self.consumer)
                self.leading = state > 0
                try:
                    await asyncio.wait_for(stop.wait(), self.s.leader_ttl_s / 4)
                except asyncio.TimeoutError:
                    pass
        finally:
            self.leading = False
            await self.leader.resign()

    async def _events_loop(self, stop: asyncio.Event) -> None:
        k = self.bus.keys
        streams = {k.events: ">", k.packets_skipped: ">"}
        last_claim = time.monotonic()
        while not stop.is_set():
            if not self.leading:
                await asyncio.sleep(0.05)
                continue
            self.rules = await self.registry.rules()  # API edits apply without a restart
            if time.monotonic() - last_claim > 10:
                # Entries this leader itself failed on (an exception) get another chance.
                last_claim = time.monotonic()
                for stream, kind, fn in ((k.events, Event, self.on_event), (k.packets_skipped, PacketSkipped, self.on_skip)):
                    rows = await self.bus.autoclaim(stream, k.ALERTERS, self.consumer, kind, min_idle_ms=CLAIM_IDLE_MS,
                                                    count=50)
                    await self._handle(stream, k.ALERTERS, rows, fn)
            reply = await self.bus.r.xreadgroup(k.ALERTERS, self.consumer, streams, count=50, block=250)
            for stream, entries in reply or []:
                name = stream.decode()
                fn = self.on_event if name == k.events else self.on_skip
                rows = [(i.decode(), self.bus.decode_entry(f, Verdicts)) for i, f in entries]
                await self._handle(name, k.ALERTERS, rows, fn)

    async def _activity_loop(self, stop: asyncio.Event) -> None:
        stream, group = self.bus.keys.activities, self.bus.keys.ACTIVITY
        while not stop.is_set():
            if not self.leading:
                await asyncio.sleep(0.05)
                continue
            rows = await self.bus.read_group(stream, group, self.consumer, ActivityNote, count=50, block_ms=250)
            await self._handle(stream, group, rows, self.on_note)

    async def _handle(self, stream: str, group: str, rows: list, fn) -> None:
        for entry_id, msg in rows:
            if msg is not None:
                try:
                    await fn(msg, entry_id)
                except Exception:
                    # Left pending: retried after CLAIM_IDLE_MS, or by the next leader.
                    log.exception("%s %s not handled; left pending", stream, entry_id)
                    continue
            await self.bus.ack(stream, group, entry_id)

    async def _tick_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.s.tick_s)
            except asyncio.TimeoutError:
                pass
            if self.leading and not stop.is_set():
                await self.resolve_quiet(time.time())
                await self.apply_commands()
            await self.metrics.flush()

    # -- the scheduler's activities ---------------------------------------------------------------
    async def on_note(self, note: ActivityNote, entry_id: str = "") -> None:
        async with self.locks.hold(self.bus.keys.alert_flow_lock(note.camera)):
            flow = await self._flow(note.camera)
            flow.note(note, time.time())
            if note.state == "start":
                await self._onset_rules(note, flow)  # first: the first notice waits for nothing else
            elif note.state == "evidence":
                await self._evidence_rules(note)
            await self._save_flow(flow)

    async def _onset_rules(self, note: ActivityNote, flow: Flow) -> None:
        if time.time() - note.created > self.s.onset_max_age_s:
            return  # a backlog after downtime: the events path handles it
        for rule in list(self.rules.values()):
            if not rule.fast or isinstance(rule, DwellRule) or not applies(rule, note.camera):
                continue
            if not in_schedule(rule, messages.utc(note.onset_wall), self.tz):
                continue
            evidence = onset_evidence(rule, note.motion, self.s.fast_min_area)
            if evidence is None:
                continue
            sc = scope(rule, note.camera)
            async with self.locks.hold(self.bus.keys.alert_lock(rule.id, sc)):
                await self._onset(rule, sc, note, evidence, {note.camera: flow})

    async def _onset(self, rule: Rule, sc: str, note: ActivityNote, evidence: str, flows: dict[str, Flow]) -> None:
        track = await self._track(rule.id, sc)
        if track.last_event >= note.wall:
            return  # the verdict for this activity is already in
        current = await self._open(rule.id, sc)
        if current is not None:
            ended, pending, since = await self._bound(current, track, flows)
            if not ended or note.onset_wall - since <= rule.quiet_s:
                # Another of its activities goes on (a camera group), or a pause shorter than the
                # quiet time: this activity is part of the open alert.
                _bind(track, note.camera, note.activity)
                await self._save_track(rule.id, sc, track)
                return
            if pending:
                # The open alert's last verdicts are still to come: it closes once they are in
                # (then this onset opens), unless they show the pause was shorter after all.
                held = msgspec.structs.replace(note, jpeg=b"")
                track.held_onsets = (track.held_onsets + [held])[-MAX_HELD:]
                await self._save_track(rule.id, sc, track)
                return
            await self._finish(current, sc, track, rule)  # quiet for long enough already
            if await self._open(rule.id, sc) is not None:
                return
        await self._open_onset(rule, sc, track, note, evidence)

    async def _open_onset(self, rule: Rule, sc: str, track: AlertTrack, note: ActivityNote, evidence: str) -> None:
        if self._cooling(rule, track, note.wall):
            await self._save_track(rule.id, sc, track)
            return
        track.prev_sent, track.last_sent, track.suppressed, track.dirty = track.last_sent, note.wall, 0, False
        track.bound = []
        _bind(track, note.camera, note.activity)
        await self._emit(lifecycle.opened_onset(rule, note, evidence), sc, track)

    async def _evidence_rules(self, note: ActivityNote) -> None:
        """A detector's labels on an activity's onset frame: an onset alert of a label or count
        rule says what was seen (one notification), before the verdict."""
        for rule in list(self.rules.values()):
            if not rule.fast or not applies(rule, note.camera):
                continue
            sc = scope(rule, note.camera)
            async with self.locks.hold(self.bus.keys.alert_lock(rule.id, sc)):
                alert = await self._open(rule.id, sc)
                if alert is None or alert.phase != "onset" or note.packet_id not in alert.packet_ids:
                    continue
                seen = detector_evidence(rule, note)
                message = f"Possible: {seen}; awaiting the verdict." if seen and seen not in alert.message else None
                await self._emit(lifecycle.with_onset_evidence(alert, note, message), sc, await self._track(rule.id, sc))

    # -- the analyzer's verdicts, in capture order per camera ----------------------------------------
    async def on_event(self, event: Event, entry_id: str = "") -> None:
        async with self.locks.hold(self.bus.keys.alert_flow_lock(event.camera)):
            flow = await self._flow(event.camera)
            where = flow.arrive(event.packet_id, entry_id or f"mem:{event.id}", time.time())
            if where == "repeat":
                return
            if where == "now":
                await self._save_flow(flow)
                await self._apply(event, "", {flow.camera: flow})
                return
            self._remember(entry_id or f"mem:{event.id}", event)
            await self._advance(flow, time.time())

    async def on_skip(self, skip: PacketSkipped, entry_id: str = "") -> None:
        async with self.locks.hold(self.bus.keys.alert_flow_lock(skip.camera)):
            flow = await self._flow(skip.camera)
            flow.skip(skip.packet_id, time.time())
            await self._advance(flow, time.time())

    async def _advance(self, flow: Flow, now: float, *, unchanged_ok: bool = False) -> None:
        """Apply the events whose turn has come (the caller holds the camera's flow lock)."""
        before = msgspec.msgpack.encode(flow) if unchanged_ok else b""
        slots, lost = flow.ready(now, self.s.evidence_wait_s, self.s.activity_timeout_s)
        if unchanged_ok and not slots and msgspec.msgpack.encode(flow) == before:
            return  # the tick found nothing to do: no write
        if lost:
            self.lost_verdicts += lost
            log.warning("camera %s: %d packet verdict(s) not in after %.0fs; going on without them",
                        flow.camera, lost, self.s.evidence_wait_s)
        for slot in slots:
            event = await self._event_at(slot.entry) if slot.entry else None
            if event is not None:
                await self._apply(event, slot.activity, {flow.camera: flow})
        await self._save_flow(flow)
        if slots:
            # What was awaited is in: an alert whose quiet time has now passed closes at once
            # (and an onset held for it opens), without waiting for the tick.
            for rule in list(self.rules.values()):
                if applies(rule, flow.camera):
                    sc = scope(rule, flow.camera)
                    async with self.locks.hold(self.bus.keys.alert_lock(rule.id, sc)):
                        alert = await self._open(rule.id, sc)
                        if alert is not None:
                            await self._check(alert, sc, rule, now, {flow.camera: flow})

    def _remember(self, entry: str, event: Event) -> None:
        self._events[entry] = event
        while len(self._events) > EVENT_CACHE:
            self._events.popitem(last=False)

    async def _event_at(self, entry: str) -> Event | None:
        event = self._events.pop(entry, None)
        if event is None and not entry.startswith("mem:"):
            rows = await self.bus.range(self.bus.keys.events, Event, start=entry, end=entry)
            event = rows[0][1] if rows else None
        return event

    async def _apply(self, event: Event, activity: str = "", flows: dict[str, Flow] | None = None) -> None:
        verdicts = verdicts_of(event)
        for rule in list(self.rules.values()):
            if not applies(rule, event.camera):
                continue
            sc = scope(rule, event.camera)
            async with self.locks.hold(self.bus.keys.alert_lock(rule.id, sc)):
                await self._evaluate(rule, sc, event, activity, flows, verdicts)

    async def _evaluate(self, rule: Rule, sc: str, event: Event, activity: str = "",
                        flows: dict[str, Flow] | None = None, verdicts: dict | None = None) -> None:
        """One event's verdict for one rule (`activity`: the activity its packet belongs to)."""
        t0, t = event.start.timestamp(), event.end.timestamp()
        alert, track = await self._state(rule.id, sc)
        v = condition(rule, event, verdicts)
        if v.match and not in_schedule(rule, event.start, self.tz):
            v = Verdict(False, True, "outside the rule's schedule")
        if alert is not None and v.match and (event.camera, activity) not in track.bound:
            ended, _, since = await self._bound(alert, track, flows)
            if ended and t0 - since > min(rule.consolidate_s, rule.quiet_s):
                # Quiet for longer than quiet_s since its activities ended: that alert is over;
                # this is a new one (or the onset that waited for it to close, which this event
                # may confirm).
                await self._finish(alert, sc, track, rule)
                alert = await self._open(rule.id, sc)
        # Streak of consecutive matching packets (and how long it has lasted, for dwell).
        if v.match:
            if not track.streak or t0 - track.last_match > rule.quiet_s:
                track.streak, track.streak_since = 0, t0
            track.streak += 1
            track.last_match = t
        elif v.known:
            track.streak = 0
        track.last_event = max(track.last_event, t)

        if alert is not None and t < alert.first_seen.timestamp() and event.packet_id not in alert.packet_ids:
            # Evidence from before this alert began belongs to an earlier one (already closed).
            await self._save_track(rule.id, sc, track)
            return

        if alert is not None and alert.phase == "onset":
            if v.match:
                track.last_sent, track.dirty = t, False
                _bind(track, event.camera, activity)
                confirmed = lifecycle.updated(alert, event, rule, notify=True, phase="confirmed",
                                              message=f"Confirmed: {event.summary}")
                self._absorb_held(rule, track, confirmed)
                await self._emit(confirmed, sc, track)
                return
            ended, pending, since = await self._bound(alert, track, flows)
            if t - alert.first_seen.timestamp() > rule.confirm_s or (ended and not pending and t - since > rule.quiet_s):
                await self._unconfirmed(alert, sc, track, v.evidence or event.summary)
            else:
                await self._save_track(rule.id, sc, track)
            return

        if v.match:
            if alert is not None:
                _bind(track, event.camera, activity)
                new = lifecycle.updated(alert, event, rule, notify=False)
                track.dirty = track.dirty or lifecycle.worth_notifying(alert, new)
                if track.dirty and self._may_notify(rule, track, t):
                    new = msgspec.structs.replace(new, notify=True)
                    track.last_sent, track.dirty = t, False
                self._absorb_held(rule, track, new)
                await self._emit(new, sc, track)
                return
            ready = track.streak >= rule.min_consecutive
            if isinstance(rule, DwellRule):
                ready = ready and t - track.streak_since >= rule.min_s
            if ready and not self._cooling(rule, track, t):
                track.prev_sent, track.last_sent, track.suppressed, track.dirty = track.last_sent, t, 0, False
                track.bound = []
                _bind(track, event.camera, activity)
                await self._emit(lifecycle.opened(rule, event), sc, track)
                return
        elif alert is not None:
            # No match: the alert ends only once its activities are over and analysed, and quiet
            # time has passed since (a packet without the label mid-activity changes nothing).
            ended, pending, since = await self._bound(alert, track, flows)
            if ended and not pending and t - since > rule.quiet_s:
                await self._finish(alert, sc, track, rule)
                return
            if track.dirty and self._may_notify(rule, track, t):
                track.last_sent, track.dirty = t, False
                await self._emit(lifecycle.announced(alert), sc, track)
                return
        await self._save_track(rule.id, sc, track)

    async def _bound(self, alert: Alert, track: AlertTrack, flows: dict[str, Flow] | None = None
                     ) -> tuple[bool, bool, float]:
        """For the activities the alert is bound to: whether all have ended, whether verdicts
        of theirs are still to come, and since when it has been quiet (its last evidence, or
        the last of them to end). An alert bound to none (events without announced
        activities) counts from its last evidence."""
        ended, pending, since = True, False, alert.last_seen.timestamp()
        for cam, act in track.bound:
            flow = (flows or {}).get(cam) or await self._flow(cam)
            done, waiting, end = flow.activity(act)
            ended, pending = ended and done, pending or waiting
            if end is not None:
                since = max(since, end)
        return ended, pending, since

    @staticmethod
    def _absorb_held(rule: Rule, track: AlertTrack, alert: Alert) -> None:
        """Onsets held while this alert's verdicts were pending: those its evidence now
        bridges are part of this alert (their own verdicts will add to it)."""
        for h in list(track.held_onsets):
            if h.onset_wall - alert.last_seen.timestamp() <= rule.quiet_s:
                track.held_onsets.remove(h)
                _bind(track, h.camera, h.activity)

    @staticmethod
    def _may_notify(rule: Rule, track: AlertTrack, t: float) -> bool:
        return not rule.update_every_s or t - track.last_sent >= rule.update_every_s

    def _cooling(self, rule: Rule, track: AlertTrack, t: float) -> bool:
        """Cooldown counts from the last notification actually sent for this rule and scope;
        matches held back by it do not extend it."""
        if rule.cooldown_s and track.last_sent and t - track.last_sent < rule.cooldown_s:
            track.suppressed += 1
            self.suppressed += 1
            return True
        return False

    async def _unconfirmed(self, alert: Alert, sc: str, track: AlertTrack, why: str) -> None:
        # A false alarm the verdict rejected does not start a cooldown.
        if track.last_sent and track.last_sent <= alert.last_seen.timestamp() + 1e-6:
            track.last_sent = track.prev_sent
        await self._close(alert, sc, track, None, phase="unconfirmed", message=f"Not confirmed: {why}")

    async def _finish(self, alert: Alert, sc: str, track: AlertTrack, rule: Rule | None, why: str = "") -> None:
        """The alert is over: resolved, or for an onset never confirmed, resolved unconfirmed."""
        if alert.phase == "onset":
            await self._unconfirmed(alert, sc, track, why or "the activity ended unconfirmed")
        else:
            await self._close(alert, sc, track, rule, why)

    async def _close(self, alert: Alert, sc: str, track: AlertTrack, rule: Rule | None, why: str = "", *,
                     phase: str | None = None, message: str | None = None) -> None:
        """Resolve; then open the onset that waited for this alert to close, if any."""
        track.dirty, track.bound = False, []
        await self._emit(lifecycle.resolved(alert, why, phase=phase, message=message), sc, track)
        rule = rule or self.rules.get(alert.rule)
        while track.held_onsets:
            held = track.held_onsets.pop(0)
            evidence = onset_evidence(rule, held.motion, self.s.fast_min_area) if rule else None
            if evidence is not None and track.last_event < held.wall:
                await self._open_onset(rule, sc, track, held, evidence)  # type: ignore[arg-type]
                return  # later ones wait for this one, as they waited for the last
        await self._save_track(alert.rule, sc, track)

    # -- resolution by time ---------------------------------------------------------------------
    async def _clock(self, alert: Alert, now: float, flows: dict[str, Flow] | None = None) -> float:
        """How far the alert's cameras have been evaluated: now, or earlier while an activity
        goes on or its packets await their verdicts."""
        edge = now
        for cam in alert.cameras or [alert.camera]:
            flow = (flows or {}).get(cam) or await self._flow(cam)
            edge = min(edge, flow.frontier())
        return edge

    async def resolve_quiet(self, now: float, *, everything: bool = False) -> None:
        if everything:
            await self.drain()
        k = self.bus.keys
        for cam in await self.bus.r.smembers(k.alert_flows):
            camera = cam.decode()
            async with self.locks.hold(k.alert_flow_lock(camera)):
                flow = await self._flow(camera)
                await self._advance(flow, now if not everything else math.inf, unchanged_ok=True)
        for key in await self.bus.r.smembers(k.open_alerts_index):
            raw = await self.bus.r.get(key)
            if raw is None:
                await self.bus.r.srem(k.open_alerts_index, key)
                continue
            seen = messages.decode(raw, Alert)
            sc = key.decode().rsplit(":", 1)[-1]
            async with self.locks.hold(k.alert_lock(seen.rule, sc)):
                alert = await self._open(seen.rule, sc)
                if alert is None:
                    continue
                rule = self.rules.get(alert.rule)
                track = await self._track(alert.rule, sc)
                if everything:
                    track.held_onsets = []  # nothing opens after the end of the stream
                    if alert.phase == "onset":
                        await self._unconfirmed(alert, sc, track, "end of stream")
                    else:
                        await self._close(alert, sc, track, rule, "end of stream")
                    continue
                if rule is None:
                    await self._close(alert, sc, track, None, "rule removed")
                    continue
                await self._check(alert, sc, rule, now, track=track)

    async def _check(self, alert: Alert, sc: str, rule: Rule, now: float, flows: dict[str, Flow] | None = None,
                     track: AlertTrack | None = None) -> None:
        """Resolve by time, measured on evaluated evidence; send a held-back update when due."""
        track = track or await self._track(rule.id, sc)
        clock = await self._clock(alert, now, flows)
        ended, pending, since = await self._bound(alert, track, flows)
        if alert.phase == "onset" and clock - alert.first_seen.timestamp() > rule.confirm_s:
            await self._unconfirmed(alert, sc, track, "no verdict agreed in time")
        elif ended and not pending and clock - since > rule.quiet_s:
            await self._finish(alert, sc, track, rule)
        elif track.dirty and self._may_notify(rule, track, clock):
            track.last_sent, track.dirty = clock, False
            await self._emit(lifecycle.announced(alert), sc, track)

    async def apply_commands(self) -> None:
        """Operators' actions from the API (resolve an alert); the leader applies them in order."""
        k = self.bus.keys
        await self.bus.ensure_group(k.alert_commands, k.ALERT_COMMANDS, start="0")
        rows = await self.bus.read_group(k.alert_commands, k.ALERT_COMMANDS, self.consumer, AlertCommand,
                                         count=50, block_ms=None)  # type: ignore[arg-type]
        for entry_id, cmd in rows:
            if cmd is not None and cmd.action == "resolve":
                await self._resolve_by_hand(cmd)
            await self.bus.ack(k.alert_commands, k.ALERT_COMMANDS, entry_id)

    async def _resolve_by_hand(self, cmd: AlertCommand) -> None:
        for key in await self.bus.r.smembers(self.bus.keys.open_alerts_index):
            raw = await self.bus.r.get(key)
            seen = messages.decode(raw, Alert) if raw else None
            if seen is None or seen.id != cmd.alert_id:
                continue
            sc = key.decode().rsplit(":", 1)[-1]
            async with self.locks.hold(self.bus.keys.alert_lock(seen.rule, sc)):
                alert = await self._open(seen.rule, sc)
                if alert is not None and alert.id == cmd.alert_id:
                    track = await self._track(alert.rule, sc)
                    await self._close(alert, sc, track, None, f"resolved by {cmd.by}")
            return

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Handle every note and event already written (one-shot runs, before the end)."""
        deadline = time.monotonic() + timeout_s
        for stream, group, kind, fn in self._inputs():
            while time.monotonic() < deadline:
                rows = await self.bus.read_group(stream, group, self.consumer, kind, count=50, block_ms=None)  # type: ignore[arg-type]
                await self._handle(stream, group, rows, fn)
                info = await self.bus.group_info(stream, group)
                if not rows and (info is None or not info["pending"]):
                    break
                if not rows:
                    await asyncio.sleep(0.01)  # another loop of this process holds one in hand

    # -- state ------------------------------------------------------------------------------------
    async def _flow(self, camera: str) -> Flow:
        raw = await self.bus.r.get(self.bus.keys.alert_flow(camera))
        return msgspec.msgpack.decode(raw, type=Flow) if raw else Flow(camera=camera)

    async def _save_flow(self, flow: Flow) -> None:
        k = self.bus.keys
        pipe = self.bus.r.pipeline(transaction=True)
        if flow.idle() and not flow.done:
            pipe.delete(k.alert_flow(flow.camera))
            pipe.srem(k.alert_flows, flow.camera)
        else:
            pipe.set(k.alert_flow(flow.camera), msgspec.msgpack.encode(flow), ex=self.s.retention_s)
            pipe.sadd(k.alert_flows, flow.camera)
        await pipe.execute()

    async def _state(self, rule_id: str, sc: str) -> tuple[Alert | None, AlertTrack]:
        k = self.bus.keys
        raw_alert, raw_track = await self.bus.r.mget([k.open_alert(rule_id, sc), k.alert_track(rule_id, sc)])
        alert = messages.decode(raw_alert, Alert) if raw_alert else None  # one round trip for both
        return alert, messages.decode(raw_track, AlertTrack) if raw_track else AlertTrack()

    async def _open(self, rule_id: str, sc: str) -> Alert | None:
        raw = await self.bus.r.get(self.bus.keys.open_alert(rule_id, sc))
        return messages.decode(raw, Alert) if raw else None

    async def _track(self, rule_id: str, sc: str) -> AlertTrack:
        raw = await self.bus.r.get(self.bus.keys.alert_track(rule_id, sc))
        return messages.decode(raw, AlertTrack) if raw else AlertTrack()

    async def _save_track(self, rule_id: str, sc: str, track: AlertTrack) -> None:
        await self.bus.r.set(self.bus.keys.alert_track(rule_id, sc), messages.encode(track), ex=self.s.retention_s)

    async def _emit(self, alert: Alert, sc: str, track: AlertTrack) -> None:
        k = self.bus.keys
        key = k.open_alert(alert.rule, sc)
        minid = str(int((time.time() - self.s.retention_s) * 1000))
        # Written once per (alert id, seq): re-processing after a crash never duplicates.
        entry = await self.bus.publish_once(k.alerts, k.once("alert", f"{alert.id}:{alert.seq}"), alert)
        pipe = self.bus.r.pipeline(transaction=True)
        if alert.state == "resolved":
            pipe.delete(key)
            pipe.srem(k.open_alerts_index, key)
        else:
            pipe.set(key, messages.encode(alert))
            pipe.sadd(k.open_alerts_index, key)
        pipe.set(k.alert_track(alert.rule, sc), messages.encode(track), ex=self.s.retention_s)
        pipe.xtrim(k.alerts, minid=minid, approximate=True)
        await pipe.execute()
        if entry:
            self.published += 1
            self.metrics.inc("vigil_alerts_changes_total", rule=alert.rule, state=alert.state, severity=alert.severity,
                             notify="true" if alert.notify else "false")
            if alert.state == "open":
                self.metrics.observe("vigil_alerts_open_delay_seconds", max(0.0, time.time() - alert.first_seen.timestamp()),
                                     fast="true" if alert.phase == "onset" else "false")
            if alert.notify:
                self.notified += 1
                log.info("alert %s %s%s (%s on %s)", alert.id, alert.state, f" [{alert.phase}]" if alert.phase else "",
                         alert.rule, sc)
