"""Shared by the webhook fault tests: a `vigil alerts` process fed with real Event messages
written into Redis, and checks that every alert change reached the receiver exactly once."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import redis

from bus import messages
from bus.connection import FIELD
from bus.messages import Alert
from bus.names import Keys
from tests.alerting import event
from tests.receiver import Hit, Receiver

KEYS = Keys()
SECRET = "whsec-faults-" + "f" * 24


CONCURRENCY = 4  # webhook requests in flight; also bounds the Redis connections the senders use


def alerts_config(path: Path, hook_url: str, extra: str = "", outage_s: float = 60) -> Path:
    """An alerts stage with one label rule and one webhook endpoint whose retries outlast an
    outage of `outage_s` (50 tries, each delay capped at outage/20 but at least 4 s: 50 tries
    take at least 50 x 0.7 x cap > outage), so nothing dead-letters while it is down."""
    cap = max(4.0, outage_s / 20)
    path.write_text(
        "rules:\n"
        "  - {id: person, label: person, quiet_s: 1, consolidate_s: 1, severity: warning}\n"
        "alerts:\n"
        "  tick_s: 0.5\n"
        "  webhooks:\n"
        "    max_attempts: 50\n    backoff_base_s: 0.5\n"
        f"    backoff_max_s: {cap:g}\n    jitter: 0.3\n"
        f"    connect_timeout_s: 1\n    timeout_s: 3\n    lease_s: 10\n    concurrency: {CONCURRENCY}\n"
        f"    endpoints:\n      - {{id: hook, url: '{hook_url}', secret_env: HOOK_SECRET, allow_private: true}}\n"
        + extra
    )
    return path


class EventFeed:
    """Real Event messages, as the analyzer writes them: each camera sees a person for ~2 s,
    then nobody for ~2 s, so alerts open, update and resolve over and over."""

    def __init__(self, r: redis.Redis, cameras: int = 3) -> None:
        self.r = r
        self.cameras = [f"cam{i}" for i in range(cameras)]
        self.n = 0

    def tick(self) -> None:
        now = time.time()
        person = int(now / 2) % 2 == 0
        for cam in self.cameras:
            self.n += 1
            ev = event(cam, f"{cam}-{self.n}", now - 0.5, now, ["person", "motion"] if person else ["motion"])
            self.r.xadd(KEYS.events, {FIELD: messages.encode(ev)})


def alert_changes(r: redis.Redis) -> list[tuple[str, int, str]]:
    """(alert id, seq, state) of every notification in the `alerts` stream (what webhooks
    send; evidence folded in silently is not sent)."""
    out = []
    for _, fields in r.xrange(KEYS.alerts):
        a = messages.decode(fields[FIELD], Alert)
        if a.notify:
            out.append((a.id, a.seq, a.state))
    return out


def received(hits: list[Hit]) -> list[tuple[str, int, str]]:
    return [(h.body["id"], h.body["seq"], h.body["state"]) for h in hits]


def settled(r: redis.Redis, recs: list[Receiver]) -> bool:
    """Every alert change so far arrived, and nothing is left to deliver."""
    hits = [h for rec in recs for h in rec.accepted()]
    changes = alert_changes(r)
    return bool(changes) and set(received(hits)) >= set(changes) and r.zcard(KEYS.deliveries_due) == 0


def check_exactly_once(r: redis.Redis, recs: list[Receiver]) -> dict[str, int]:
    """Every alert change arrived once, signed; no delivery id twice; no dead letters."""
    hits = [h for rec in recs for h in rec.accepted()]
    changes = alert_changes(r)
    ids = Counter(h.delivery for h in hits)
    dup = {d: n for d, n in ids.items() if n > 1}
    assert not dup, f"deliveries received more than once: {dup}"
    got = Counter(received(hits))
    assert set(got) == set(changes), (set(changes) - set(got), set(got) - set(changes))
    assert all(n == 1 for n in got.values()), {k: n for k, n in got.items() if n > 1}
    assert all(h.signed_ok for h in hits)
    assert all(h.delivery.startswith("dlv_") for h in hits)
    assert r.llen(KEYS.dead_letters) == 0, "a delivery dead-lettered during the outage"
    return {"changes": len(changes), "delivered": len(hits), "max_attempt": max(h.attempt for h in hits)}
