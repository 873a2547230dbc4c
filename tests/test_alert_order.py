"""One alert per activity on a real Redis, driven by the scheduler's activity notes and the
analyzer's events through the alerts stage's consumer groups: an alert never resolves between
two packets of one activity however late the verdicts come; pauses shorter than quiet_s keep
one alert, longer ones give one per visit; events delivered out of capture order give the same
alerts as in order."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from alerts.settings import AlertsSettings
from bus.connection import Bus
from bus.messages import ActivityNote, Event, LabelRule, MotionRule, PacketSkipped
from bus.names import Keys
from bus.registry import Registry
from tests.alerting import (
    alerts_in_stream, end_note, event, note, packet_note, running, settled, start_note, wait_for,
)

SPAN = 6.0  # packet span (scheduler.packet_span_s)


class Activity:
    """One camera's activity: its notes and, per packet, the labels the analyzer will see."""

    def __init__(self, camera: str, name: str, t0: float, people: list[int]) -> None:
        self.camera, self.name, self.t0, self.people = camera, f"{camera}-{name}", t0, people
        self.packets = [f"{self.name}-p{i}" for i in range(len(people))]

    def notes(self) -> list[ActivityNote]:
        out = [start_note(self.camera, self.name, self.t0, packet_id=self.packets[0])]
        for i, p in enumerate(self.packets):
            out.append(packet_note(self.camera, self.name, p, self.t0 + SPAN * i, self.t0 + SPAN * (i + 1), i + 1))
        return out + [end_note(self.camera, self.name, self.t0 + SPAN * len(self.packets), len(self.packets))]

    def events(self) -> list[Event]:
        return [event(self.camera, p, self.t0 + SPAN * i, self.t0 + SPAN * (i + 1),
                      ["person", "motion"] if n else ["motion"], counts={"person": n} if n else {})
                for i, (p, n) in enumerate(zip(self.packets, self.people))]


async def _rules(bus: Bus) -> None:
    reg = Registry(bus)
    await reg.put_rule(LabelRule(id="person", label="person", quiet_s=10, update_every_s=10))
    await reg.put_rule(MotionRule(id="moving", min_area=0.01, fast=True, quiet_s=10, confirm_s=30))


def _visits(base: float) -> list[Activity]:
    return [
        # cam a: a visit of 30 s (people 1, 1, 2, 2, 1), a pause of 5 s (shorter than quiet_s),
        # 12 s more, a pause of 30 s (longer), 24 s in which the person leaves half-way.
        Activity("a", "v1", base, [1, 1, 2, 2, 1]),
        Activity("a", "v2", base + 35, [1, 1]),
        Activity("a", "v3", base + 77, [1, 1, 0, 0]),
        # cam b, at the same time: motion for 24 s, a person only in the middle.
        Activity("b", "v1", base + 24, [0, 1, 0, 0]),
    ]


def _view(alerts) -> list[tuple]:
    """Every change of every alert, by alert and seq (cameras interleave as their events come)."""
    return sorted((a.id, a.seq, a.state, a.notify, a.phase, a.first_seen, a.last_seen, a.event_ids, a.labels,
                   sorted(a.counts.items()), a.message) for a in alerts)


async def _scenario(bus: Bus, *, order: str, seed: int = 0, base: float | None = None) -> list:
    """Notes first (the scheduler is always ahead of the analyzer), then the events: in
    capture order, or shuffled (parallel analyzer workers, newest-first queues)."""
    await _rules(bus)
    visits = _visits(base if base is not None else time.time() - 400)
    async with running(bus) as svc:
        for v in sorted(visits, key=lambda v: v.t0):
            await note(bus, *v.notes())
        await settled(bus, bus.keys.activities, bus.keys.ACTIVITY)
        events = [e for v in visits for e in v.events()]
        events.sort(key=lambda e: e.start)
        if order == "shuffled":
            random.Random(seed).shuffle(events)
        for e in events:
            await bus.publish(bus.keys.events, e)
        await settled(bus, bus.keys.events, bus.keys.ALERTERS)
        await svc.resolve_quiet(time.time())
        return await alerts_in_stream(bus)


async def test_pauses_shorter_than_quiet_keep_one_alert_longer_ones_one_per_visit(bus):
    alerts = await _scenario(bus, order="in-order")
    ids = {(a.rule, a.camera): sorted({x.id for x in alerts if (x.rule, x.camera) == (a.rule, a.camera)})
           for a in alerts}
    # cam a: visits 1 and 2 are one alert (5 s pause), visit 3 another (30 s pause).
    assert ids[("person", "a")] == ["alr-person-a-v1-p0", "alr-person-a-v3-p0"]
    assert ids[("moving", "a")] == ["alr-moving-a-v1-p0", "alr-moving-a-v3-p0"]
    assert ids[("person", "b")] == ["alr-person-b-v1-p1"] and ids[("moving", "b")] == ["alr-moving-b-v1-p0"]
    first = [a for a in alerts if a.id == "alr-person-a-v1-p0"]
    # Few notifications: the open, one update for the second person, the final resolved;
    # every packet's evidence is still folded in.
    assert [(a.state, a.event_ids[-1]) for a in first if a.notify] == [
        ("open", "evt-a-v1-p0"), ("update", "evt-a-v1-p2"), ("resolved", "evt-a-v2-p1")]
    assert first[-1].event_count == 7 and first[-1].counts == {"person": 2}
    # Visit 3: the person left half-way; the alert ends with the last packet that showed them.
    third = [a for a in alerts if a.id == "alr-person-a-v3-p0"]
    assert third[-1].state == "resolved"
    assert third[-1].last_seen.timestamp() == pytest.approx(first[0].first_seen.timestamp() + 77 + 12)
    # The fast rule: opened at each visit's onset (the first moving frame), confirmed by its
    # first packet's verdict, same id.
    fast = [a for a in alerts if a.id == "alr-moving-a-v1-p0"]
    assert [(a.state, a.phase) for a in fast if a.notify] == [
        ("open", "onset"), ("update", "confirmed"), ("resolved", "confirmed")]
    assert fast[0].first_seen == first[0].first_seen and fast[0].event_ids == []


async def test_events_out_of_capture_order_give_the_same_alerts(bus):
    base = time.time() - 400
    want = _view(await _scenario(bus, order="in-order", base=base))
    for i in range(3):
        other = Bus(bus.r, Keys(f"run{i}:"))
        got = _view(await _scenario(other, order="shuffled", seed=i, base=base))
        assert got == want, f"shuffled (seed {i}) differs"


async def test_an_alert_never_resolves_between_two_packets_however_late_the_verdicts(bus):
    """A scene moving for 72 s, 6 s packets, quiet_s 5 (the old demo's motion rule): the
    verdicts come one at a time, each long after the quiet time would have passed by the
    clock, some out of order, one never (the analyzer skipped it): one alert, open until the
    activity ended and its packets were evaluated, then one resolved."""
    await Registry(bus).put_rule(MotionRule(id="moving", min_area=0.01, quiet_s=5.0, update_every_s=0))
    base = time.time() - 300
    v = Activity("cam", "act", base, [0] * 12)
    events = v.events()
    async with running(bus, AlertsSettings(tick_s=0.05)):
        await note(bus, *v.notes()[:-1])  # start and every packet; the activity goes on
        await settled(bus, bus.keys.activities, bus.keys.ACTIVITY)
        order = [0, 1, 3, 2, 4, 6, 5, 7, 9, 10, 11]  # packet 8 never gets a verdict
        for n, i in enumerate(order):
            await bus.publish(bus.keys.events, events[i])
            if i == 7:
                await bus.publish(bus.keys.packets_skipped, PacketSkipped(camera="cam", packet_id=v.packets[8],
                                                                          wall=base + 54))
            await asyncio.sleep(0.3)  # several ticks between verdicts
            states = [a.state for a in await alerts_in_stream(bus)]
            assert "resolved" not in states, (n, states)
        await asyncio.sleep(0.5)
        alerts = await alerts_in_stream(bus)
        assert {a.id for a in alerts} == {"alr-moving-cam-act-p0"} and "resolved" not in [a.state for a in alerts]
        await note(bus, v.notes()[-1])  # the activity ends
        done = await wait_for(lambda: _resolved(bus), timeout=10)
    assert [a.state for a in done if a.notify] == ["open", "resolved"]
    assert done[-1].event_count == 11 and done[-1].first_seen.timestamp() == pytest.approx(base)
    assert done[-1].last_seen.timestamp() == pytest.approx(base + 72)


async def test_an_activity_keeps_its_alert_open_after_the_label_left_until_it_ends(bus):
    """A person in the first two packets, then half a minute of motion without anyone (longer
    than quiet_s): the alert stays open as long as the activity goes on, then resolves once."""
    await Registry(bus).put_rule(LabelRule(id="person", label="person", quiet_s=10))
    base = time.time() - 300
    v = Activity("cam", "act", base, [1, 1, 0, 0, 0, 0, 0])
    async with running(bus, AlertsSettings(tick_s=0.05)):
        await note(bus, *v.notes()[:-1])
        await settled(bus, bus.keys.activities, bus.keys.ACTIVITY)  # as live: notes long before verdicts
        for e in v.events():
            await bus.publish(bus.keys.events, e)
        await settled(bus, bus.keys.events, bus.keys.ALERTERS)
        await asyncio.sleep(0.5)
        assert [a.state for a in await alerts_in_stream(bus)] == ["open", "update"]
        await note(bus, v.notes()[-1])  # the activity ends
        done = await wait_for(lambda: _resolved(bus), timeout=10)
    assert [(a.state, a.notify) for a in done] == [("open", True), ("update", False), ("resolved", True)]
    assert done[-1].last_seen.timestamp() == pytest.approx(base + 12)  # the last packet with the person


async def test_onset_held_while_the_previous_alert_awaits_its_verdicts(bus):
    """A second visit starts 20 s after the first ended (longer than quiet_s) while the first
    visit's last verdicts are still to come: its fast alert opens the moment they arrive."""
    await Registry(bus).put_rule(MotionRule(id="moving", min_area=0.01, fast=True, quiet_s=10, confirm_s=60))
    base = time.time() - 100
    one, two = Activity("c", "v1", base, [0, 0]), Activity("c", "v2", base + 32, [0])
    async with running(bus):
        await note(bus, *one.notes(), *two.notes())
        await settled(bus, bus.keys.activities, bus.keys.ACTIVITY)
        assert [a.id for a in await alerts_in_stream(bus)] == ["alr-moving-c-v1-p0"]  # the second waits
        for e in one.events():
            await bus.publish(bus.keys.events, e)
        alerts = await wait_for(lambda: _n(bus, 4), timeout=10)
    assert [(a.id, a.state, a.phase) for a in alerts if a.notify] == [
        ("alr-moving-c-v1-p0", "open", "onset"), ("alr-moving-c-v1-p0", "update", "confirmed"),
        ("alr-moving-c-v1-p0", "resolved", "confirmed"), ("alr-moving-c-v2-p0", "open", "onset")]
    assert alerts[-1].first_seen.timestamp() == pytest.approx(base + 32)


async def _resolved(bus):
    alerts = await alerts_in_stream(bus)
    return alerts if alerts and alerts[-1].state == "resolved" else None


async def _n(bus, n):
    alerts = [a for a in await alerts_in_stream(bus) if a.notify]
    return await alerts_in_stream(bus) if len(alerts) >= n else None

