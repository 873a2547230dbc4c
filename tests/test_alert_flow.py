"""A camera's flow in the alerts stage (pure logic): verdicts in capture order, how far the
camera has been evaluated, and when a missing verdict is given up on."""

from __future__ import annotations

import math

from alerts.flow import Flow
from tests.alerting import end_note, packet_note, start_note

T = 1000.0  # capture epoch of the first moving frame


def _flow(n: int = 4) -> Flow:
    f = Flow(camera="c")
    f.note(start_note("c", "act", T), now=0.0)
    for i in range(n):
        f.note(packet_note("c", "act", f"p{i}", T + 6 * i, T + 6 * i + 6), now=0.0)
    return f


def test_verdicts_are_released_in_capture_order():
    f = _flow()
    assert f.frontier() == T  # nothing evaluated yet
    assert f.arrive("p2", "e2", now=1.0) == "held" and f.arrive("p0", "e0", now=1.0) == "held"
    ready, lost = f.ready(1.0, wait_s=60, activity_timeout_s=180)
    assert [s.packet for s in ready] == ["p0"] and not lost  # p1 still to come: p2 waits
    assert f.frontier() == T + 6
    assert f.arrive("p1", "e1", now=2.0) == "held"
    assert [s.packet for s in f.ready(2.0, 60, 180)[0]] == ["p1", "p2"]
    assert f.arrive("p1", "e1", now=2.5) == "repeat"  # a redelivered event changes nothing
    f.note(end_note("c", "act", T + 24), now=3.0)
    assert f.frontier() == T + 18 and f.busy()  # the activity ended, p3's verdict is still to come
    f.arrive("p3", "e3", now=4.0)
    assert [s.packet for s in f.ready(4.0, 60, 180)[0]] == ["p3"]
    assert f.frontier() == math.inf and not f.busy() and f.idle()


def test_an_ongoing_activity_is_known_only_up_to_its_last_announced_packet():
    f = _flow(2)
    for p in ("p0", "p1"):
        f.arrive(p, "e", now=1.0)
    f.ready(1.0, 60, 180)
    assert f.frontier() == T + 12  # frames after the last packet are not analysed yet


def test_skipped_and_lost_verdicts_do_not_block_the_rest():
    f = _flow(3)
    f.skip("p0", now=1.0)  # stale in the analyzer's queue: it will never come
    f.arrive("p2", "e2", now=1.0)
    ready, _ = f.ready(1.0, 60, 180)
    assert [(s.packet, s.entry) for s in ready] == [("p0", "")]  # passed over; p1 is still being analysed
    ready, lost = f.ready(1.0 + 61, 60, 180)  # p2 waited behind p1 for longer than wait_s
    assert [(s.packet, s.entry) for s in ready] == [("p1", ""), ("p2", "e2")] and lost == 1 and f.lost == 1
    assert f.arrive("p1", "e1", now=70.0) == "repeat"  # too late: never applied out of order


def test_a_slow_replay_whose_verdicts_keep_coming_loses_nothing():
    f = _flow(3)
    for i, p in enumerate(("p0", "p1", "p2")):
        now = 100.0 * (i + 1)  # each verdict long after the packet was announced, but in order
        f.arrive(p, "e", now=now)
        assert [s.packet for s in f.ready(now, 60, 180)[0]] == [p]
    assert f.lost == 0


def test_a_new_start_ends_the_previous_activity_and_silence_ends_one():
    f = Flow(camera="c")
    f.note(start_note("c", "a1", T), now=0.0)
    f.note(start_note("c", "a2", T + 30), now=0.0)  # the scheduler restarted mid-activity
    assert [s.ended for s in f.spans] == [True, False]
    f.ready(10.0, 60, 180)
    assert [s.id for s in f.spans] == ["a2"] and f.frontier() == T + 30
    f.ready(200.0, 60, 180)  # nothing heard from a2 for longer than activity_timeout_s
    assert f.spans == [] and f.frontier() == math.inf


def test_events_of_packets_no_activity_announced_apply_at_once():
    f = Flow(camera="c")
    assert f.arrive("hb-1", "e", now=1.0) == "now"  # a heartbeat, or a scheduler without notes
    f.note(packet_note("c", "act", "hb-1", T, T + 1), now=2.0)  # a late note for it is not waited for
    assert not f.slots
