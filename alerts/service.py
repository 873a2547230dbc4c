"""The alerts stage: rules over events (and, for fast rules, over onset packets) -> alert
lifecycle -> the `alerts` stream -> channels (webhooks, optional MQTT).

Inputs, each through its own consumer group so nothing is lost across restarts:
- `events` (group `alerters`): every analysed packet; verdicts, labels, counts, motion.
- `packets` (group `alert-onset`): only onset packets matter. They carry the scheduler's
  motion summary (area, boxes, zones) the moment an activity starts, so a fast rule opens
  its alert without waiting for any model; the event of the same packet later confirms it
  or resolves it as not confirmed, under the same id.

State per rule and scope (a camera, or a camera group) lives in Redis: the open alert and
an AlertTrack (streak, last notification sent). Several alerts processes may run: one
holds the lifecycle lease and evaluates (so each camera's events are taken in order), the
others stand by and take over when it lapses; every change of one rule+scope also runs
under a short Redis lock, so even a leader that lost its lease cannot interleave writes.
Webhook sending runs in every process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from zoneinfo import ZoneInfo

import msgspec

from alerts import lifecycle
from alerts.channels import Channel
from alerts.leader import Leader
from alerts.locks import ScopeLocks
from alerts.rules import Verdict, applies, condition, in_schedule, onset_evidence, scope, verdicts_of
from alerts.settings import AlertsSettings
from alerts.webhooks import WebhookChannel, seed_endpoints
from bus import messages
from bus.connection import Bus
from bus.metrics import StageMetrics
from bus.messages import Alert, AlertCommand, AlertTrack, DwellRule, Event, Packet, Rule
from bus.registry import Registry

log = logging.getLogger("vigil.alerts")
CLAIM_IDLE_MS = 30_000  # the leader retries entries it failed on (left pending) after this


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
        self.suppressed = 0
        self.leader = Leader(bus, "alerts-lifecycle", self.consumer, settings.leader_ttl_s)
        self.leading = False
        self.metrics = StageMetrics(bus)
        self.webhooks = WebhookChannel(bus, settings.webhooks, self.consumer)
        self.channels: list[Channel] = channels if channels is not None else self._channels()

    def _channels(self) -> list[Channel]:
        out: list[Channel] = [self.webhooks]
        if self.s.mqtt.enabled:
            from alerts.mqtt import MqttChannel  # optional extra: imported only when configured

            out.append(MqttChannel(self.bus, self.s.mqtt, self.consumer))
        return out

    # -- loops ---------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        k = self.bus.keys
        await self.bus.ensure_group(k.events, k.ALERTERS, start="0")
        # Onset packets older than onset_max_age_s cannot open anything: skip the backlog.
        start = f"{int((time.time() - self.s.onset_max_age_s) * 1000)}-0"
        await self.bus.ensure_group(k.packets, k.ONSET, start=start)
        await seed_endpoints(self.bus, self.s.webhooks)
        for ch in self.channels:
            await ch.prepare()
        self.rules = await self.registry.rules()
        # The loops share a local stop: one failing ends its siblings (and this run, which the
        # runtime restarts) without stopping the whole process.
        local = asyncio.Event()
        tasks = [asyncio.create_task(c, name=n) for n, c in (
            ("alerts:lease", self._lease_loop(local)),
            ("alerts:events", self._events_loop(local)), ("alerts:onset", self._onset_loop(local)),
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

    async def _lease_loop(self, stop: asyncio.Event) -> None:
        """One process evaluates at a time, so each camera's events are taken in stream order;
        others stand by (and still send webhooks) and take over when the lease lapses."""
        k = self.bus.keys
        try:
            while not stop.is_set():
                state = await self.leader.hold()
                if state == 2:
                    # Taking over: first what the previous leader read but never acked, in order.
                    for stream, group, kind, fn in ((k.packets, k.ONSET, Packet, self.on_packet),
                                                    (k.events, k.ALERTERS, Event, self.on_event)):
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
        stream, group = self.bus.keys.events, self.bus.keys.ALERTERS
        last_claim = time.monotonic()
        while not stop.is_set():
            if not self.leading:
                await asyncio.sleep(0.05)
                continue
            self.rules = await self.registry.rules()  # API edits apply without a restart
            rows: list = []
            if time.monotonic() - last_claim > 10:
                # Entries this leader itself failed on (an exception) get another chance.
                last_claim = time.monotonic()
                rows = await self.bus.autoclaim(stream, group, self.consumer, Event, min_idle_ms=CLAIM_IDLE_MS, count=50)
            if not rows:
                rows = await self.bus.read_group(stream, group, self.consumer, Event, count=50, block_ms=250)
            await self._handle(stream, group, rows, self.on_event)

    async def _onset_loop(self, stop: asyncio.Event) -> None:
        stream, group = self.bus.keys.packets, self.bus.keys.ONSET
        while not stop.is_set():
            if not self.leading:
                await asyncio.sleep(0.05)
                continue
            rows = await self.bus.read_group(stream, group, self.consumer, Packet, count=20, block_ms=250)
            await self._handle(stream, group, rows, self.on_packet)

    async def _handle(self, stream: str, group: str, rows: list, fn) -> None:
        for entry_id, msg in rows:
            if msg is not None:
                try:
                    await fn(msg)
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

    # -- phase one: onset packets -----------------------------------------------------------
    async def on_packet(self, packet: Packet) -> None:
        if packet.reason != "onset" or not packet.frames:
            return
        if time.time() - packet.created > self.s.onset_max_age_s:
            return  # a backlog after downtime: the events path handles it
        for rule in list(self.rules.values()):
            if not rule.fast or isinstance(rule, DwellRule) or not applies(rule, packet.camera):
                continue
            if not in_schedule(rule, messages.utc(packet.frames[0].wall), self.tz):
                continue
            evidence = onset_evidence(rule, packet, self.s.fast_min_area)
            if evidence is None:
                continue
            sc = scope(rule, packet.camera)
            async with self.locks.hold(self.bus.keys.alert_lock(rule.id, sc)):
                await self._onset(rule, sc, packet, evidence)

    async def _onset(self, rule: Rule, sc: str, packet: Packet, evidence: str) -> None:
        t = packet.frames[-1].wall
        track = await self._track(rule.id, sc)
        if track.last_event >= t:
            return  # the verdict for this activity is already in
        current = await self._open(rule.id, sc)
        if current is not None:
            if lifecycle.within_s(current, packet.frames[0].wall, rule.consolidate_s):
                await self._hold(lifecycle.kept_alive(current, packet), sc, track)
            return
        if self._cooling(rule, track, t):
            return
        track.prev_sent, track.last_sent, track.suppressed = track.last_sent, t, 0
        await self._emit(lifecycle.opened_fast(rule, packet, evidence), sc, track)

    # -- phase two and ordinary rules: events -------------------------------------------------
    async def on_event(self, event: Event) -> None:
        verdicts = verdicts_of(event)
        for rule in list(self.rules.values()):
            if not applies(rule, event.camera):
                continue
            sc = scope(rule, event.camera)
            async with self.locks.hold(self.bus.keys.alert_lock(rule.id, sc)):
                await self._evaluate(rule, sc, event, verdicts)

    async def _evaluate(self, rule: Rule, sc: str, event: Event, verdicts: dict | None = None) -> None:
        t0, t = event.start.timestamp(), event.end.timestamp()
        k = self.bus.keys
        raw_alert, raw_track = await self.bus.r.mget([k.open_alert(rule.id, sc), k.alert_track(rule.id, sc)])
        alert = messages.decode(raw_alert, Alert) if raw_alert else None  # one round trip for both
        track = messages.decode(raw_track, AlertTrack) if raw_track else AlertTrack()
        v = condition(rule, event, verdicts)
        if v.match and not in_schedule(rule, event.start, self.tz):
            v = Verdict(False, True, "outside the rule's schedule")
        # Streak of consecutive matching packets (and how long it has lasted, for dwell).
        if v.match:
            if not track.streak or t0 - track.last_match > rule.quiet_s:
                track.streak, track.streak_since = 0, t0
            track.streak += 1
            track.last_match = t
        elif v.known:
            track.streak = 0
        track.last_event = max(track.last_event, t)

        if alert is not None and alert.phase == "onset":
            if v.match:
                track.last_sent = t
                await self._emit(lifecycle.updated(alert, event, phase="confirmed",
                                                   message=f"Confirmed: {event.summary}"), sc, track)
            elif t - alert.first_seen.timestamp() > rule.confirm_s:
                await self._unconfirmed(alert, sc, track, v.evidence or event.summary)
            else:
                await self._save_track(rule.id, sc, track)
            return

        if v.match:
            if alert is not None and lifecycle.within(alert, event, rule.consolidate_s):
                if rule.update_every_s and t - track.last_sent < rule.update_every_s:
                    await self._hold(lifecycle.folded(alert, event), sc, track)
                    return
                track.last_sent = t
                await self._emit(lifecycle.updated(alert, event), sc, track)
                return
            if alert is not None:
                await self._emit(lifecycle.resolved(alert, "superseded"), sc, track)
            ready = track.streak >= rule.min_consecutive
            if isinstance(rule, DwellRule):
                ready = ready and t - track.streak_since >= rule.min_s
            if ready and not self._cooling(rule, track, t):
                track.prev_sent, track.last_sent, track.suppressed = track.last_sent, t, 0
                await self._emit(lifecycle.opened(rule, event), sc, track)
                return
        elif alert is not None and t - alert.last_seen.timestamp() > rule.quiet_s:
            await self._emit(lifecycle.resolved(alert), sc, track)
            return
        await self._save_track(rule.id, sc, track)

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
        done = lifecycle.resolved(alert, phase="unconfirmed")
        done = msgspec.structs.replace(done, message=f"Not confirmed: {why}")
        await self._emit(done, sc, track)

    # -- resolution by time ---------------------------------------------------------------------
    async def resolve_quiet(self, now: float, *, everything: bool = False) -> None:
        if everything:
            await self.drain()
        for key in await self.bus.r.smembers(self.bus.keys.open_alerts_index):
            raw = await self.bus.r.get(key)
            if raw is None:
                await self.bus.r.srem(self.bus.keys.open_alerts_index, key)
                continue
            seen = messages.decode(raw, Alert)
            sc = key.decode().rsplit(":", 1)[-1]
            async with self.locks.hold(self.bus.keys.alert_lock(seen.rule, sc)):
                alert = await self._open(seen.rule, sc)
                if alert is None:
                    continue
                rule = self.rules.get(alert.rule)
                track = await self._track(alert.rule, sc)
                if alert.phase == "onset" and (everything or rule is None or now - alert.first_seen.timestamp() > rule.confirm_s):
                    await self._unconfirmed(alert, sc, track, "no verdict agreed in time" if not everything else "end of stream")
                elif rule is None:
                    await self._emit(lifecycle.resolved(alert, "rule removed"), sc, track)
                elif everything or lifecycle.quiet_for(alert, now) > rule.quiet_s:
                    await self._emit(lifecycle.resolved(alert, "end of stream" if everything else ""), sc, track)

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
                    await self._emit(lifecycle.resolved(alert, f"resolved by {cmd.by}"), sc, track)
            return

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Handle every onset packet and event already written (one-shot runs, before the end)."""
        k = self.bus.keys
        deadline = time.monotonic() + timeout_s
        for stream, group, kind, fn in ((k.packets, k.ONSET, Packet, self.on_packet), (k.events, k.ALERTERS, Event, self.on_event)):
            while time.monotonic() < deadline:
                rows = await self.bus.read_group(stream, group, self.consumer, kind, count=50, block_ms=None)  # type: ignore[arg-type]
                await self._handle(stream, group, rows, fn)
                info = await self.bus.group_info(stream, group)
                if not rows and (info is None or not info["pending"]):
                    break
                if not rows:
                    await asyncio.sleep(0.01)  # another loop of this process holds one in hand

    # -- state ------------------------------------------------------------------------------------
    async def _open(self, rule_id: str, sc: str) -> Alert | None:
        raw = await self.bus.r.get(self.bus.keys.open_alert(rule_id, sc))
        return messages.decode(raw, Alert) if raw else None

    async def _track(self, rule_id: str, sc: str) -> AlertTrack:
        raw = await self.bus.r.get(self.bus.keys.alert_track(rule_id, sc))
        return messages.decode(raw, AlertTrack) if raw else AlertTrack()

    async def _save_track(self, rule_id: str, sc: str, track: AlertTrack) -> None:
        await self.bus.r.set(self.bus.keys.alert_track(rule_id, sc), messages.encode(track), ex=self.s.retention_s)

    async def _hold(self, alert: Alert, sc: str, track: AlertTrack) -> None:
        """Keep new evidence on the open alert without notifying (update_every_s)."""
        pipe = self.bus.r.pipeline(transaction=True)
        pipe.set(self.bus.keys.open_alert(alert.rule, sc), messages.encode(alert))
        pipe.set(self.bus.keys.alert_track(alert.rule, sc), messages.encode(track), ex=self.s.retention_s)
        await pipe.execute()

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
            self.metrics.inc("vigil_alerts_changes_total", rule=alert.rule, state=alert.state, severity=alert.severity)
            if alert.state == "open":
                self.metrics.observe("vigil_alerts_open_delay_seconds", max(0.0, time.time() - alert.first_seen.timestamp()),
                                     fast="true" if alert.phase == "onset" else "false")
            log.info("alert %s %s%s (%s on %s)", alert.id, alert.state, f" [{alert.phase}]" if alert.phase else "",
                     alert.rule, sc)
