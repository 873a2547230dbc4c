"""The alert lifecycle on a real Redis, driven by real Event and Packet messages through the
`events` and `packets` streams and the alerts stage's own consumer groups."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

import pytest

from alerts.rules import in_schedule
from alerts.settings import AlertsSettings
from bus.messages import (
    CountRule, DwellRule, LabelRule, MotionRule, PromptRule, RuleMatch, TimeWindow, ZoneRule,
)
from bus.registry import Registry
from tests.alerting import alerts_in_stream, end_note, event, note, running, settled, start_note, wait_for


async def _feed(bus, events) -> None:
    for e in events:
        await bus.publish(bus.keys.events, e)
    await settled(bus, bus.keys.events, bus.keys.ALERTERS)


async def test_walk_consolidates_and_cooldown_counts_from_last_sent(bus):
    await Registry(bus).put_rule(LabelRule(id="person", label="person", consolidate_s=10, quiet_s=4, cooldown_s=40))
    base = time.time() - 200  # real epoch timestamps, a few minutes old
    seq = iter(range(100))

    def pk(t0: float, labels: list[str]):
        return event("door", f"door-{next(seq)}", base + t0, base + t0 + 4, labels)

    async with running(bus) as svc:
        # Person 1 walks across for 20 s: five packets, each with a person.
        await _feed(bus, [pk(t, ["person", "motion"]) for t in (0, 4, 8, 12, 16)])
        # The scene goes quiet (motion, nobody): resolves after quiet_s.
        await _feed(bus, [pk(20, ["motion"]), pk(24, ["motion"])])
        # Person 2 comes 32 s after the last notification (the open; the updates of person 1
        # were more of the same, so no notification): inside the 40 s cooldown.
        await _feed(bus, [pk(32, ["person"]), pk(36, ["person"]), pk(40, ["motion"]), pk(44, ["motion"])])
        # Person 3: 52 s after the last notification SENT (but only 12 s after person 2's
        # held-back matches, which must not extend the cooldown): a second alert.
        await _feed(bus, [pk(52, ["person"]), pk(56, ["person"])])
        await svc.resolve_quiet(time.time())
        alerts = await alerts_in_stream(bus)
    first, second = sorted({a.id for a in alerts}, key=lambda i: [a.id for a in alerts].index(i))
    one = [a for a in alerts if a.id == first]
    assert [a.state for a in one] == ["open", "update", "update", "update", "update", "resolved"]
    assert [a.notify for a in one] == [True, False, False, False, False, True]  # more of the same: folded in
    assert [a.seq for a in one] == list(range(6))
    assert one[-1].event_ids == [f"evt-door-{i}" for i in range(5)]
    two = [a for a in alerts if a.id == second]
    assert [a.state for a in two] == ["open", "update", "resolved"]
    assert two[0].event_ids == ["evt-door-11"]  # person 3's first packet
    assert svc.suppressed == 2


async def test_min_consecutive_dwell_and_count_rules(bus):
    reg = Registry(bus)
    await reg.put_rule(LabelRule(id="two", label="car", min_consecutive=3, quiet_s=5))
    await reg.put_rule(DwellRule(id="loiter", label="person", min_s=10, quiet_s=5))
    await reg.put_rule(CountRule(id="crowd", label="person", min=3))
    await reg.put_rule(MotionRule(id="big", min_area=0.3))
    base = time.time() - 100
    async with running(bus):
        await _feed(bus, [
            event("lot", f"lot-{i}", base + 4 * i, base + 4 * i + 4, ["car", "person"], counts={"car": 1, "person": 1 + i},
                  area=0.1 * i)
            for i in range(5)
        ])
        alerts = await alerts_in_stream(bus)
    opened = {a.rule: a for a in alerts if a.state == "open"}
    assert opened["two"].event_ids == ["evt-lot-2"]  # the third car packet in a row
    assert opened["loiter"].event_ids == ["evt-lot-2"]  # streak from t=0, 12 s at the end of packet 2
    assert opened["crowd"].event_ids == ["evt-lot-2"]  # 3 people
    assert opened["big"].event_ids == ["evt-lot-3"]  # area 0.3


async def test_zone_rule_and_camera_group_dedup(bus):
    reg = Registry(bus)
    await reg.put_rule(ZoneRule(id="gate", zones=["gate"], label="person"))
    await reg.put_rule(LabelRule(id="lobby", label="person", cameras=["cam1", "cam2"], group="lobby"))
    base = time.time() - 50
    async with running(bus):
        await _feed(bus, [
            event("cam1", "c1-0", base, base + 4, ["person"], zones=["yard"]),
            event("cam2", "c2-0", base + 1, base + 5, ["person"], zones=["gate"]),
            event("cam1", "c1-1", base + 4, base + 8, ["person"]),
        ])
        alerts = await alerts_in_stream(bus)
    gate = [a for a in alerts if a.rule == "gate"]
    assert [(a.state, a.camera) for a in gate] == [("open", "cam2")]
    lobby = [a for a in alerts if a.rule == "lobby"]
    # Two cameras on one scene: one alert, updated from the other camera.
    assert [a.state for a in lobby] == ["open", "update", "update"] and len({a.id for a in lobby}) == 1
    assert lobby[-1].cameras == ["cam1", "cam2"]


def test_schedule_windows():
    rule = LabelRule(id="night", label="person", schedule=[TimeWindow(start="22:00", end="06:00", days=[4])])
    tz = timezone.utc
    fri_late = datetime(2026, 11, 27, 23, 30, tzinfo=tz)  # a Friday
    sat_early = datetime(2026, 11, 28, 5, 59, tzinfo=tz)  # still Friday night's window
    sat_late = datetime(2026, 11, 28, 23, 0, tzinfo=tz)
    noon = datetime(2026, 11, 27, 12, 0, tzinfo=tz)
    assert in_schedule(rule, fri_late, tz) and in_schedule(rule, sat_early, tz)
    assert not in_schedule(rule, sat_late, tz) and not in_schedule(rule, noon, tz)


async def test_rules_outside_schedule_do_not_fire(bus):
    now = datetime.now(timezone.utc)
    hour = (now.hour + 6) % 24
    window = TimeWindow(start=f"{hour:02d}:00", end=f"{(hour + 1) % 24:02d}:00")
    await Registry(bus).put_rule(LabelRule(id="off", label="person", schedule=[window]))
    await Registry(bus).put_rule(LabelRule(id="on", label="person"))
    t = time.time() - 5
    async with running(bus, AlertsSettings(tick_s=3600, timezone="UTC")):
        await _feed(bus, [event("c", "c-0", t, t + 4, ["person"])])
        rules = {a.rule for a in await alerts_in_stream(bus)}
    assert rules == {"on"}


async def test_two_phase_fast_rule_opens_on_onset_then_confirms(bus):
    await Registry(bus).put_rule(LabelRule(id="intruder", label="person", fast=True, confirm_s=6, cooldown_s=120,
                                           severity="critical"))
    now = time.time()
    async with running(bus, AlertsSettings(tick_s=0.2)):
        t0 = time.monotonic()
        await note(bus, start_note("yard", "yard-act", now, packet_id="yard-0"))
        first = await wait_for(lambda: alerts_in_stream(bus), timeout=5, every=0.005)
        opened_in = time.monotonic() - t0
        assert first[0].state == "open" and first[0].phase == "onset" and first[0].event_ids == []
        assert first[0].packet_ids == ["yard-0"] and first[0].snapshot_url == "/api/activities/yard-act/onset.jpg"
        assert first[0].first_seen.timestamp() == pytest.approx(now)  # the first moving frame's capture
        # The verdict on the same packet (the cpu backend found a person): same id, confirmed.
        await _feed(bus, [event("yard", "yard-0", now, now + 0.4, ["person"], summary="1 person detected")])
        alerts = await alerts_in_stream(bus)
        assert [(a.id, a.state, a.phase) for a in alerts] == [
            (first[0].id, "open", "onset"), (first[0].id, "update", "confirmed")]
        assert alerts[-1].message.startswith("Confirmed: 1 person detected") and alerts[-1].event_ids == ["evt-yard-0"]
    assert opened_in < 2.0, opened_in


async def test_two_phase_not_confirmed_resolves_and_starts_no_cooldown(bus):
    await Registry(bus).put_rule(PromptRule(id="climb", prompt="a person climbs the fence", fast=True, confirm_s=1.0,
                                            cooldown_s=300))
    now = time.time()
    async with running(bus, AlertsSettings(tick_s=0.2)):
        await note(bus, start_note("fence", "fence-0", now))
        await wait_for(lambda: alerts_in_stream(bus), timeout=5, every=0.01)
        no = RuleMatch(rule="climb", match=False, confidence=0.9, evidence="a cat walks along the fence")
        await _feed(bus, [event("fence", "fence-0", now, now + 0.4, ["motion"], verdicts=[no])])
        await note(bus, end_note("fence", "fence-0", now + 0.4))  # the cat is gone: the activity ended
        alerts = await wait_for(lambda: _states(bus, 2), timeout=5)
        assert alerts[-1].state == "resolved" and alerts[-1].phase == "unconfirmed"
        assert alerts[-1].message.startswith("Not confirmed")
        # A real climb right after: the rejected onset started no cooldown.
        later = time.time()
        yes = RuleMatch(rule="climb", match=True, confidence=0.8, evidence="someone climbs over")
        await _feed(bus, [event("fence", "fence-1", later, later + 4, ["person"], verdicts=[yes])])
        alerts = await alerts_in_stream(bus)
    assert alerts[-1].state == "open" and alerts[-1].id == "alr-climb-fence-1"
    assert len({a.id for a in alerts}) == 2


async def _states(bus, n):
    got = await alerts_in_stream(bus)
    return got if len(got) >= n else None


async def test_rule_edits_apply_without_restart(bus):
    reg = Registry(bus)
    t = time.time() - 30
    async with running(bus):
        await _feed(bus, [event("c", "c-0", t, t + 4, ["dog"])])
        assert await alerts_in_stream(bus) == []
        await reg.put_rule(LabelRule(id="dog", label="dog"))
        await wait_for(lambda: _has_rule(reg, "dog"))
        import asyncio

        await asyncio.sleep(0.6)  # the stage reloads the registry on every read (<= 250 ms)
        await _feed(bus, [event("c", "c-1", t + 4, t + 8, ["dog"])])
        assert [a.rule for a in await alerts_in_stream(bus)] == ["dog"]


async def _has_rule(reg, rule_id):
    return rule_id in await reg.rules()


@pytest.mark.parametrize("n_workers", [2])
async def test_two_alerts_processes_share_the_work_without_duplicates(bus, n_workers):
    """Two alerts stages on one Redis: the per rule+scope lock keeps one alert per scope."""
    import contextlib

    await Registry(bus).put_rule(LabelRule(id="p", label="person", consolidate_s=60, quiet_s=60))
    base = time.time() - 100
    async with contextlib.AsyncExitStack() as stack:
        for i in range(n_workers):
            await stack.enter_async_context(running(bus, consumer=f"w{i}"))
        await _feed(bus, [event(f"cam{i % 3}", f"p-{i}", base + i, base + i + 1, ["person"]) for i in range(30)])
        alerts = await alerts_in_stream(bus)
    opens = [a for a in alerts if a.state == "open"]
    assert sorted(a.camera for a in opens) == ["cam0", "cam1", "cam2"]
    per = {}
    for a in alerts:
        per.setdefault(a.id, []).append(a.seq)
    for seqs in per.values():
        assert sorted(seqs) == list(range(len(seqs)))  # no seq written twice, none skipped
    assert len(alerts) == 30


async def test_standby_alerts_process_takes_over(bus):
    await Registry(bus).put_rule(LabelRule(id="p", label="person", consolidate_s=60, quiet_s=60))
    base = time.time() - 100
    first = running(bus, AlertsSettings(tick_s=3600, leader_ttl_s=1), consumer="a")
    a = await first.__aenter__()
    await wait_for(lambda: _leads(a))
    async with running(bus, AlertsSettings(tick_s=3600, leader_ttl_s=1), consumer="b") as b:
        await _feed(bus, [event("c", "c-0", base, base + 4, ["person"])])
        assert a.leading and not b.leading
        await first.__aexit__(None, None, None)  # the leader goes away
        await wait_for(lambda: _leads(b), timeout=5)
        await _feed(bus, [event("c", "c-1", base + 4, base + 8, ["person"])])
        alerts = await alerts_in_stream(bus)
    assert [(x.state, x.seq) for x in alerts] == [("open", 0), ("update", 1)] and len({x.id for x in alerts}) == 1


async def _leads(svc):
    return svc.leading


async def test_updates_notify_only_what_changes_and_at_most_every_update_every_s(bus):
    await Registry(bus).put_rule(LabelRule(id="p", label="person", consolidate_s=10, quiet_s=4, update_every_s=10))
    base = time.time() - 100
    # A person stays 40 s (a packet every 4 s); a second person joins at 8 s, a third at 12 s
    # (new counts), a dog at 28 s (a new label).
    counts = [1, 1, 2, 3, 3, 3, 2, 3, 3, 3]
    async with running(bus) as svc:
        await _feed(bus, [event("c", f"c-{i}", base + 4 * i, base + 4 * i + 4, ["person"] + (["dog"] if i == 7 else []),
                                counts={"person": n, **({"dog": 1} if i == 7 else {})}) for i, n in enumerate(counts)])
        await svc.resolve_quiet(time.time())
        alerts = await alerts_in_stream(bus)
    assert [a.seq for a in alerts] == list(range(11))
    sent = [(a.state, a.event_ids[-1]) for a in alerts if a.notify]
    # open at c-0; 2 people at c-2 (held back: 8 s after the open) and 3 at c-3: one update at
    # c-3 (12 s), nothing new until the dog at c-7 (32 s): one update; then the final resolved.
    assert sent == [("open", "evt-c-0"), ("update", "evt-c-3"), ("update", "evt-c-7"), ("resolved", "evt-c-9")]
    assert alerts[-1].event_ids == [f"evt-c-{i}" for i in range(10)] and alerts[-1].event_count == 10  # nothing lost
    assert alerts[-1].counts == {"person": 3, "dog": 1} and set(alerts[-1].labels) == {"person", "dog"}


async def test_onset_during_an_open_alert_keeps_it_alive_without_a_new_notification(bus):
    """Activity that pauses and resumes within the consolidation window stays one alert: no
    resolve-then-reopen pair (the duplicate notifications users of other NVRs complain about)."""
    await Registry(bus).put_rule(MotionRule(id="moving", min_area=0.01, fast=True, quiet_s=3.0, consolidate_s=10))
    async with running(bus, AlertsSettings(tick_s=0.1)):
        now = time.time()
        await note(bus, start_note("gate", "gate-0", now - 2.0), end_note("gate", "gate-0", now - 1.5))
        opened = await wait_for(lambda: alerts_in_stream(bus), timeout=5, every=0.01)
        assert [a.state for a in opened] == ["open"]
        # A new onset 1.3 s after the first ended (the activity resumes), inside the quiet time.
        await note(bus, start_note("gate", "gate-1", now - 0.2))
        await asyncio.sleep(2.5)  # past the first activity's quiet time, not the second's
        alerts = await alerts_in_stream(bus)
        assert [a.state for a in alerts] == ["open"], alerts
        # It goes on as long as the activity does, and resolves quiet_s after it ended, still
        # one alert id from start to end.
        await note(bus, end_note("gate", "gate-1", time.time()))
        done = await wait_for(lambda: _resolved_all(bus), timeout=10)
        assert {a.id for a in done} == {opened[0].id}
        assert [a.state for a in done][-1] == "resolved"


async def _resolved_all(bus):
    alerts = await alerts_in_stream(bus)
    return alerts if alerts and alerts[-1].state == "resolved" else None
