"""The MQTT channel against a real broker (Debian's mosquitto) with Home Assistant's topics."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from alerts.settings import AlertsSettings, MqttSettings
from bus.messages import LabelRule
from bus.registry import Registry
from tests.alerting import event, running, settled
from tests.conftest import need

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


@pytest.fixture
def broker(tmp_path: Path):
    need(MOSQUITTO is not None, "mosquitto (Debian package) for the MQTT test")
    try:
        import aiomqtt  # noqa: F401
    except ImportError:
        need(False, "aiomqtt (pip extra vigil[mqtt])")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(10)


async def test_alerts_reach_home_assistant_topics(bus, broker):
    import aiomqtt

    await Registry(bus).put_rule(LabelRule(id="person", label="person", quiet_s=2, title="Person at the door"))
    settings = AlertsSettings(tick_s=3600, mqtt=MqttSettings(enabled=True, port=broker),
                              public_url="https://vigil.example.com/")
    got: dict[str, list] = {}
    async with aiomqtt.Client("127.0.0.1", broker) as sub:
        await sub.subscribe("vigil/#", qos=1)
        await sub.subscribe("homeassistant/#", qos=1)

        async def collect() -> None:
            async for m in sub.messages:
                got.setdefault(str(m.topic), []).append((m.payload.decode(), m.retain))

        reader = asyncio.create_task(collect())
        async with running(bus, settings) as svc:
            base = time.time() - 30
            for i, labels in enumerate((["person"], ["person"], ["motion"], ["motion"])):
                await bus.publish(bus.keys.events, event("door", f"door-{i}", base + 4 * i, base + 4 * i + 4, labels))
            await settled(bus, bus.keys.events, bus.keys.ALERTERS)
            deadline = time.monotonic() + 10
            while len(got.get("vigil/alerts", [])) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert svc.channels[-1].name == "mqtt"
        await asyncio.sleep(0.3)
        reader.cancel()
    # The second person packet was more of the same: folded in, not a notification.
    assert [json.loads(p)["state"] for p, _ in got["vigil/alerts"]] == ["open", "resolved"]
    assert [p for p, _ in got["vigil/door/person/state"]] == ["ON", "OFF"]
    last = json.loads(got["vigil/door/person/attributes"][-1][0])
    assert last["state"] == "resolved" and last["event_ids"] == ["evt-door-0", "evt-door-1"]
    # Links a subscriber can follow: absolute, from alerts.public_url.
    assert last["snapshot_url"] == "https://vigil.example.com/api/packets/door-1/frames/0.jpg"
    cfg = json.loads(got["homeassistant/binary_sensor/vigil_door_person/config"][0][0])
    assert cfg["state_topic"] == "vigil/door/person/state" and cfg["device_class"] == "occupancy"
    assert cfg["availability_topic"] == "vigil/status" and cfg["name"] == "Person at the door"
    assert [p for p, _ in got["vigil/status"]][:1] == ["online"] and got["vigil/status"][-1][0] == "offline"
