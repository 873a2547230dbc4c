"""A webhook receiver goes down for a long stretch (VIGIL_SOAK_S; 5 minutes in CI, 1 minute
otherwise) while alerts keep firing under a running `vigil alerts` process (real Redis, real
HTTP receiver on 127.0.0.1). When it comes back every alert change arrives exactly once per
`Vigil-Delivery` id, nothing is lost or dead-lettered, and the Vigil process's memory,
threads and descriptors stay flat through the outage (the queue lives in Redis)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from bus.server import EmbeddedRedis
from tests.faults import ProcSample, VigilProcess, poll, sample, soak_seconds
from tests.receiver import Receiver
from tests.webhook_faults import CONCURRENCY, KEYS, SECRET, EventFeed, alert_changes, alerts_config, check_exactly_once, settled

pytestmark = pytest.mark.integration
SOAK_S = soak_seconds()


# The outage alone may last the suite's default 300 s timeout; add room for the rest.
@pytest.mark.timeout(SOAK_S + 180)
def test_webhook_receiver_down_for_a_long_stretch(tmp_path: Path):
    soak = SOAK_S
    server = EmbeddedRedis()
    url = server.start()
    r = redis.Redis.from_url(url)
    first = Receiver(SECRET).start()
    recs = [first]
    cfg = alerts_config(tmp_path / "vigil.yaml", first.url, outage_s=soak)
    vigil = VigilProcess(["alerts", "-c", str(cfg)], url, tmp_path / "vigil.log", env={"HOOK_SECRET": SECRET})
    feed = EventFeed(r)
    samples: list[ProcSample] = []
    try:
        poll(lambda: r.exists(KEYS.webhooks) and _group_ready(r), 30, "the alerts stage up", proc=vigil)
        # Up: alerts flow to the receiver.
        until = time.monotonic() + 6
        while time.monotonic() < until:
            feed.tick()
            time.sleep(0.5)
        poll(lambda: first.accepted(), 10, "the first webhooks", proc=vigil)

        # Down for the soak: connection refused on every try, alerts keep firing.
        first.stop()
        down_at = time.monotonic()
        changes_before = len(alert_changes(r))
        next_sample = down_at + soak * 0.25  # the first quarter warms the queue up
        while time.monotonic() - down_at < soak:
            feed.tick()
            vigil.alive()
            if time.monotonic() >= next_sample:
                samples.append(sample(vigil.pid))
                next_sample += max(2.0, soak / 20)
            time.sleep(0.5)
        samples.append(sample(vigil.pid))
        queued = r.zcard(KEYS.deliveries_index)
        changes_during = len(alert_changes(r)) - changes_before
        assert r.llen(KEYS.dead_letters) == 0, "dead letters while the receiver was down"
        waiting = r.zcard(KEYS.deliveries_due)

        # Back on the same port: everything queued arrives.
        back = Receiver(SECRET, port=first.port).start()
        recs.append(back)
        back_at = time.monotonic()
        poll(lambda: settled(r, recs), 90, "every alert change delivered after the outage", proc=vigil)
        drained_s = time.monotonic() - back_at
        figures = check_exactly_once(r, recs)
        redis_clients = int(r.info("clients")["connected_clients"]) - 1  # less this test's own
        vigil.alive()
    finally:
        vigil.stop()
        for rec in recs:
            rec.stop()
        r.close()
        server.stop()

    warm, end = samples[0], samples[-1]
    peak = max(s.rss_kb for s in samples)
    print(f"\nwebhook receiver down {soak:.0f}s: {changes_during} alert changes while down "
          f"({waiting} chains waiting at the end, {queued} deliveries in all); drained {drained_s:.1f}s after "
          f"it came back; {figures}; vigil warm {warm} -> end {end} (peak rss {peak / 1024:.1f}MB)")
    print("samples (fds, sockets, tcp, rss MB):",
          [(s.fds, s.sockets, s.tcp, round(s.rss_kb / 1024, 1)) for s in samples], f"redis clients {redis_clients}")
    assert changes_during >= soak / 4, "too few alerts fired during the outage to prove anything"
    assert figures["delivered"] == figures["changes"]
    # Flat: the queue is in Redis, not in the process.
    assert end.rss_kb - warm.rss_kb <= 8 * 1024, (warm, end)
    assert end.threads - warm.threads <= 2, (warm, end)
    # Refused HTTP tries leave no socket behind. The Redis client's pool may still grow to the
    # peak number of concurrent Redis calls, which the sender's concurrency bounds.
    assert end.tcp - warm.tcp <= 1, (warm, end)
    assert end.sockets - warm.sockets <= CONCURRENCY + 1, (warm, end)
    # Files and pipes: none added (a name lookup opens /etc/hosts for a moment: allow that).
    assert (end.fds - end.sockets) - (warm.fds - warm.sockets) <= 2, (warm, end)


def _group_ready(r: redis.Redis) -> bool:
    try:
        return any(g["name"].decode() == KEYS.WEBHOOKS for g in r.xinfo_groups(KEYS.alerts))
    except redis.ResponseError:
        return False
