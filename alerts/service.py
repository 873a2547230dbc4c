"""The alerts stage: rules over events -> alert lifecycle -> the `alerts` stream."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time

from alerts import lifecycle
from alerts.rules import applies, matches
from alerts.settings import AlertsSettings
from bus import messages
from bus.connection import Bus
from bus.messages import Alert, Event, Rule
from bus.registry import Registry

log = logging.getLogger("vigil.alerts")


class AlertsService:
    """Reads events through the `alerters` consumer group. Open alerts live in Redis, so a
    restarted stage continues the same alert ids. (One alerts process per deployment for
    now: lifecycle updates are not yet serialised across processes.)"""

    def __init__(self, bus: Bus, settings: AlertsSettings, consumer: str | None = None) -> None:
        self.bus = bus
        self.s = settings
        self.registry = Registry(bus)
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.rules: dict[str, Rule] = {}
        self.published = 0

    async def run(self, stop: asyncio.Event) -> None:
        stream, group = self.bus.keys.events, self.bus.keys.ALERTERS
        await self.bus.ensure_group(stream, group, start="0")
        last_tick = 0.0
        while not stop.is_set():
            self.rules = await self.registry.rules()
            rows = await self.bus.read_group(stream, group, self.consumer, Event, count=50, block_ms=250)
            for entry_id, event in rows:
                if event is not None:
                    await self.on_event(event)
                await self.bus.ack(stream, group, entry_id)
            if time.monotonic() - last_tick >= self.s.tick_s:
                last_tick = time.monotonic()
                await self.resolve_quiet(time.time())

    async def on_event(self, event: Event) -> None:
        for rule in self.rules.values():
            if not applies(rule, event.camera):
                continue
            current = await self._open(rule.id, event.camera)
            if matches(rule, event):
                if current and lifecycle.within(current, event, rule.consolidate_s):
                    await self._emit(lifecycle.updated(current, event), event.id)
                else:
                    if current:
                        await self._emit(lifecycle.resolved(current, "superseded"), event.id)
                    await self._emit(lifecycle.opened(rule, event), event.id)
            elif current and (event.end.timestamp() - current.last_seen.timestamp()) > rule.quiet_s:
                await self._emit(lifecycle.resolved(current), event.id)

    async def resolve_quiet(self, now: float, *, everything: bool = False) -> None:
        for key in await self.bus.r.smembers(self.bus.keys.open_alerts_index):
            raw = await self.bus.r.get(key)
            if raw is None:
                await self.bus.r.srem(self.bus.keys.open_alerts_index, key)
                continue
            alert = messages.decode(raw, Alert)
            rule = self.rules.get(alert.rule)
            quiet = rule.quiet_s if rule else 0.0
            if everything or lifecycle.quiet_for(alert, now) > quiet:
                await self._emit(lifecycle.resolved(alert, "end of stream" if everything else ""), f"tick{alert.seq}")

    async def _open(self, rule_id: str, camera: str) -> Alert | None:
        raw = await self.bus.r.get(self.bus.keys.open_alert(rule_id, camera))
        return messages.decode(raw, Alert) if raw else None

    async def _emit(self, alert: Alert, cause: str) -> None:
        key = self.bus.keys.open_alert(alert.rule, alert.camera)
        minid = str(int((time.time() - self.s.retention_s) * 1000))
        entry = await self.bus.publish_once(
            self.bus.keys.alerts, self.bus.keys.once("alert", f"{alert.id}:{alert.seq}"), alert
        )
        pipe = self.bus.r.pipeline(transaction=True)
        if alert.state == "resolved":
            pipe.delete(key)
            pipe.srem(self.bus.keys.open_alerts_index, key)
        else:
            pipe.set(key, messages.encode(alert))
            pipe.sadd(self.bus.keys.open_alerts_index, key)
        pipe.xtrim(self.bus.keys.alerts, minid=minid, approximate=True)
        await pipe.execute()
        if entry:
            self.published += 1
            log.info("alert %s %s (%s on %s) after %s", alert.id, alert.state, alert.rule, alert.camera, cause)
