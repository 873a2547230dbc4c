"""MQTT channel (optional extra `vigil[mqtt]`, aiomqtt): topics a Home Assistant user expects.

    <prefix>/status                          online | offline (retained; offline is the will)
    <prefix>/alerts                          every alert change, public JSON (not retained)
    <prefix>/<camera>/<rule>/state           ON while an alert is open, OFF once resolved (retained)
    <prefix>/<camera>/<rule>/attributes      the latest alert JSON (retained)
    <discovery>/binary_sensor/vigil_<camera>_<rule>/config   HA MQTT discovery (retained)

Reads the `alerts` stream through its own consumer group and acks only after the broker
took the message (QoS 1), so a broker outage delays MQTT and loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import ssl
import time
from typing import Any

from alerts.channels import Channel
from alerts.leader import Leader
from alerts.links import absolute
from alerts.settings import MqttSettings
from bus import messages
from bus.connection import Bus
from bus.messages import Alert

log = logging.getLogger("vigil.alerts.mqtt")
GROUP = "mqtt"
DEVICE_CLASS = {"person": "occupancy", "motion": "motion"}


def topics(s: MqttSettings, camera: str, rule: str) -> dict[str, str]:
    base = f"{s.topic_prefix}/{camera}/{rule}"
    return {
        "state": f"{base}/state",
        "attributes": f"{base}/attributes",
        "config": f"{s.discovery_prefix}/binary_sensor/vigil_{camera}_{rule}/config".replace(".", "_"),
    }


def discovery(s: MqttSettings, alert: Alert) -> dict[str, Any]:
    t = topics(s, alert.camera, alert.rule)
    uid = f"vigil_{alert.camera}_{alert.rule}".replace(".", "_")
    return {
        "name": alert.title or alert.rule,
        "unique_id": uid,
        "object_id": uid,
        "state_topic": t["state"],
        "json_attributes_topic": t["attributes"],
        "availability_topic": f"{s.topic_prefix}/status",
        "payload_on": "ON",
        "payload_off": "OFF",
        "device_class": DEVICE_CLASS.get(alert.rule, "problem"),
        "device": {"identifiers": [f"vigil_{alert.camera}"], "name": f"Vigil {alert.camera}", "manufacturer": "Vigil"},
    }


class MqttChannel(Channel):
    name = "mqtt"

    def __init__(self, bus: Bus, settings: MqttSettings, consumer: str, public_url: str | None = None) -> None:
        import aiomqtt  # optional dependency: only needed when MQTT is enabled

        self.aiomqtt = aiomqtt
        self.bus = bus
        self.s = settings
        self.consumer = consumer
        self.public_url = public_url
        self.announced: set[tuple[str, str]] = set()
        self.published = 0
        self.leader = Leader(bus, "mqtt", consumer)

    async def prepare(self) -> None:
        await self.bus.ensure_group(self.bus.keys.alerts, GROUP, start="$")

    def _client(self):
        s = self.s
        password = os.environ.get(s.password_env) if s.password_env else None
        return self.aiomqtt.Client(
            s.host, s.port, username=s.username, password=password, identifier=f"vigil-{self.consumer}",
            will=self.aiomqtt.Will(f"{s.topic_prefix}/status", "offline", qos=1, retain=True),
            tls_context=ssl.create_default_context() if s.tls else None, timeout=10,
        )

    async def run(self, stop: asyncio.Event) -> None:
        delay = 1.0
        while not stop.is_set():
            try:
                async with self._client() as client:
                    await client.publish(f"{self.s.topic_prefix}/status", "online", qos=1, retain=True)
                    delay = 1.0
                    self.announced.clear()
                    try:
                        await self._pump(client, stop)
                    finally:
                        # A clean stop says so at once (the will covers crashes).
                        with contextlib.suppress(Exception):
                            await asyncio.wait_for(
                                client.publish(f"{self.s.topic_prefix}/status", "offline", qos=1, retain=True), 2)
            except self.aiomqtt.MqttError as exc:
                log.warning("MQTT broker %s:%d unavailable (%s); retrying in %.0fs", self.s.host, self.s.port, exc, delay)
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                except asyncio.TimeoutError:
                    pass
                delay = min(delay * 2, 60.0)

    async def _pump(self, client, stop: asyncio.Event) -> None:
        stream = self.bus.keys.alerts
        first = True
        last_lease = 0.0
        while not stop.is_set():
            if time.monotonic() - last_lease > 1.0:
                # One publisher at a time keeps retained states in order (ON never after OFF).
                last_lease = time.monotonic()
                state = await self.leader.hold()
                if state == 0:
                    await asyncio.sleep(0.5)
                    last_lease = 0.0
                    continue
                if state == 2:
                    for entry_id, alert in await self.bus.autoclaim(stream, GROUP, self.consumer, Alert,
                                                                      min_idle_ms=0, count=1000):
                        if alert is not None:
                            await self.publish(client, alert)
                        await self.bus.ack(stream, GROUP, entry_id)
            # After a (re)connect, first what this consumer read but never got acked.
            reply = await self.bus.r.xreadgroup(GROUP, self.consumer, {stream: "0" if first else ">"}, count=100,
                                                block=None if first else 250)
            first = False
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    alert = self.bus.decode_entry(fields, Alert)
                    if alert is not None:
                        await self.publish(client, alert)
                    await self.bus.ack(stream, GROUP, entry_id)

    async def publish(self, client, alert: Alert) -> None:
        if not alert.notify:
            return  # evidence folded in silently: not a notification
        alert = absolute(alert, self.public_url)  # type: ignore[assignment]
        t = topics(self.s, alert.camera, alert.rule)
        if (alert.camera, alert.rule) not in self.announced:
            await client.publish(t["config"], json.dumps(discovery(self.s, alert)), qos=1, retain=True)
            self.announced.add((alert.camera, alert.rule))
        body = messages.to_json(alert)
        await client.publish(f"{self.s.topic_prefix}/alerts", body, qos=1)
        await client.publish(t["attributes"], body, qos=1, retain=True)
        await client.publish(t["state"], "OFF" if alert.state == "resolved" else "ON", qos=1, retain=True)
        self.published += 1
