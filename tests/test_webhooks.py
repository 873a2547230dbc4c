"""Signed webhooks against REAL HTTP receivers on 127.0.0.1: retries, exactly-once per
idempotency key, order per alert, dead letters and replay, restart safety, SSRF guard."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from alerts.settings import AlertsSettings, WebhookSettings
from alerts.signing import header, verify
from alerts.ssrf import TargetRefused, blocked, check_url, resolve
from bus.messages import LabelRule, WebhookEndpoint
from bus.registry import Registry
from bus.webhooks import WebhookStore
from tests.alerting import alerts_in_stream, event, running, settled, wait_for
from tests.conftest import ROOT
from tests.receiver import Receiver

SECRET = "whsec-" + "k" * 26
FAST = WebhookSettings(backoff_base_s=0.05, backoff_max_s=0.2, max_attempts=10, lease_s=5, timeout_s=3)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _walks(bus, cameras: list[str], n: int = 3) -> None:
    """Each camera: n packets with one more person each time, then two without: open, n-1
    updates (a higher count is worth a notification), resolved."""
    base = time.time() - 60
    evs = []
    for c in cameras:
        evs += [event(c, f"{c}-{i}", base + 4 * i, base + 4 * i + 4, ["person"], counts={"person": i + 1})
                for i in range(n)]
        evs += [event(c, f"{c}-{i}", base + 4 * i, base + 4 * i + 4, ["motion"]) for i in (n, n + 1)]
    evs.sort(key=lambda e: e.start)  # cameras interleave, as they do live
    for e in evs:
        await bus.publish(bus.keys.events, e)
    await settled(bus, bus.keys.events, bus.keys.ALERTERS)


async def _setup(bus, url: str, settings: WebhookSettings = FAST) -> AlertsSettings:
    await Registry(bus).put_rule(LabelRule(id="person", label="person", quiet_s=2, consolidate_s=10, update_every_s=0))
    await WebhookStore(bus).put_endpoint(WebhookEndpoint(id="hook", url=url, secret=SECRET, allow_private=True))
    return AlertsSettings(tick_s=3600, webhooks=settings)


def _assert_in_order_once(rec: Receiver, alerts) -> None:
    got = rec.accepted()
    assert all(h.signed_ok for h in rec.hits), "a signature did not verify"
    keys = [h.delivery for h in got]
    assert len(keys) == len(set(keys)), "a delivery was accepted twice"
    want = {(a.id, a.seq) for a in alerts}
    assert {(h.body["id"], h.body["seq"]) for h in got} == want
    for h in got:
        assert h.event == f"alert.{h.body['state']}"
    per: dict[str, list[int]] = {}
    for h in got:
        per.setdefault(h.body["id"], []).append(h.body["seq"])
    for seqs in per.values():
        assert seqs == sorted(seqs), f"out of order: {seqs}"


async def test_receiver_refuses_first_then_every_change_arrives_once_in_order(bus, caplog):
    caplog.set_level(logging.DEBUG)
    rec = Receiver(SECRET, refuse_first=4).start()
    try:
        async with running(bus, await _setup(bus, rec.url)) as svc:
            await _walks(bus, ["front", "back", "side"])
            alerts = await alerts_in_stream(bus)
            assert len(alerts) == 12
            await wait_for(lambda: _count(rec, 12), timeout=20)
            await asyncio.sleep(0.3)  # nothing more arrives
        _assert_in_order_once(rec, alerts)
        refused = [h for h in rec.hits if h.status == 503]
        assert len(refused) == 4
        # Retries carry the same idempotency key, and a later attempt number.
        accepted = {h.delivery: h for h in rec.accepted()}
        for h in refused:
            assert h.delivery in accepted and accepted[h.delivery].attempt > h.attempt
        assert svc.webhooks.stats["retried"] >= 4
        done = await WebhookStore(bus).deliveries(limit=100, status="delivered")
        assert len(done) == 12 and all(d["last_code"] == 200 for d in done)
    finally:
        rec.stop()
    assert SECRET not in caplog.text


async def _count(rec: Receiver, n: int) -> bool:
    return len(rec.accepted()) >= n


async def test_receiver_down_longer_than_retries_dead_letters_then_replay(bus):
    port = _free_port()  # nothing listens here yet: connection refused
    rec = Receiver(SECRET, port=port)
    store = WebhookStore(bus)
    settings = WebhookSettings(backoff_base_s=0.05, backoff_max_s=0.1, max_attempts=3, timeout_s=2)
    async with running(bus, await _setup(bus, rec.url, settings)):
        await _walks(bus, ["gate"], n=2)
        alerts = await alerts_in_stream(bus)
        assert [a.state for a in alerts] == ["open", "update", "resolved"]
        dead = await wait_for(lambda: _dead(store, 3), timeout=15)
        # Dead letters keep the alert's order, so a replay delivers it in order too.
        assert [d["event"] for d in dead] == ["alert.open", "alert.update", "alert.resolved"]
        assert dead[0]["attempts"] == 3 and dead[0]["last_error"]
        rec.start()
        try:
            assert await store.replay() == 3
            await wait_for(lambda: _count(rec, 3), timeout=10)
            await asyncio.sleep(0.2)
            assert await store.dead() == []
        finally:
            rec.stop()
    _assert_in_order_once(rec, alerts)
    assert [h.delivery for h in rec.accepted()] == [d["id"] for d in dead]  # same ids as before


async def _dead(store, n):
    d = await store.dead()
    return d if len(d) >= n else None


async def test_redirects_are_not_followed_and_ssrf_guard_refuses_private_targets(bus):
    target = Receiver(SECRET).start()
    rec = Receiver(SECRET, redirect_to=target.url).start()
    store = WebhookStore(bus)
    settings = WebhookSettings(backoff_base_s=0.05, backoff_max_s=0.1, max_attempts=2, timeout_s=2)
    try:
        await _setup(bus, rec.url, settings)
        # The same receiver without allow_private: refused before any connection.
        await store.put_endpoint(WebhookEndpoint(id="private", url=target.url, secret=SECRET))
        async with running(bus, AlertsSettings(tick_s=3600, webhooks=settings)):
            await _walks(bus, ["gate"], n=1)
            dead = await wait_for(lambda: _dead(store, 4), timeout=15)
        by_ep = {}
        for d in dead:
            by_ep.setdefault(d["endpoint"], []).append(d)
        assert all(d["last_code"] == 302 for d in by_ep["hook"][:1])
        assert "refused" in by_ep["private"][0]["last_error"] and by_ep["private"][0]["attempts"] == 1
        assert target.hits == []  # neither the redirect nor the refused endpoint reached it
        assert len(rec.hits) == 2  # two tries of the open, then dead (the resolve queued behind it)
    finally:
        rec.stop()
        target.stop()


def test_ssrf_static_checks():
    import ipaddress

    for ip in ("127.0.0.1", "10.1.2.3", "192.168.0.1", "169.254.169.254", "::1", "fe80::1", "::ffff:127.0.0.1",
               "100.64.0.1", "0.0.0.0", "224.0.0.1"):
        assert blocked(ipaddress.ip_address(ip)), ip
    assert not blocked(ipaddress.ip_address("93.184.216.34"))
    for url in ("http://127.0.0.1/x", "http://[::1]/x", "http://localhost:8000/", "ftp://example.com/",
                "http://user:pw@example.com/", "http://169.254.169.254/latest/meta-data"):
        with pytest.raises(TargetRefused):
            check_url(url, allow_private=False)
    check_url("http://127.0.0.1:9/x", allow_private=True)
    check_url("https://hooks.example.com/vigil", allow_private=False)


async def test_ssrf_guard_checks_what_names_resolve_to():
    # This machine's own name resolves to a private or loopback address here.
    name = socket.gethostname()
    try:
        addrs = {i[4][0] for i in socket.getaddrinfo(name, 80)}
    except socket.gaierror:
        pytest.skip("host name does not resolve")
    import ipaddress

    if not all(blocked(ipaddress.ip_address(a.split("%")[0])) for a in addrs):
        pytest.skip("host name resolves to a public address")
    with pytest.raises(TargetRefused):
        await resolve(f"http://{name}:8080/hook", allow_private=False)
    assert (await resolve(f"http://{name}:8080/hook", allow_private=True)).url.startswith(f"http://{name}")


def test_signature_roundtrip():
    body = b'{"id":"alr-1"}'
    h = header(SECRET, body, t=1_700_000_000)
    assert h.startswith("t=1700000000,v1=") and len(h.split("v1=")[1]) == 64
    assert verify(SECRET, body, h, now=1_700_000_010)
    assert not verify(SECRET, body + b" ", h, now=1_700_000_010)
    assert not verify("other-secret-xxxxxxxx", body, h, now=1_700_000_010)
    assert not verify(SECRET, body, h, now=1_700_001_000)  # too old: a replayed request


@pytest.mark.integration
async def test_vigil_killed_with_deliveries_pending_loses_none(bus, tmp_path: Path):
    """`vigil alerts` in its own process, SIGKILLed while every delivery is still pending
    (receiver down); a fresh process delivers all of them."""
    port = _free_port()
    rec = Receiver(SECRET, port=port)
    cfg = tmp_path / "vigil.yaml"
    cfg.write_text(
        "rules:\n  - id: person\n    label: person\n    quiet_s: 2\n    update_every_s: 0\n"
        "alerts:\n  tick_s: 3600\n  webhooks:\n"
        "    backoff_base_s: 0.3\n    backoff_max_s: 0.5\n    max_attempts: 50\n    lease_s: 2\n    timeout_s: 2\n"
        f"    endpoints:\n      - id: hook\n        url: {rec.url}\n        secret_env: HOOK_SECRET\n"
        "        allow_private: true\n"
    )
    env = {**os.environ, "REDIS_URL": bus.url, "HOOK_SECRET": SECRET}

    def start() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "vigil.cli", "alerts", "-c", str(cfg)], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    proc = start()
    try:
        await wait_for(lambda: bus.group_info(bus.keys.alerts, bus.keys.WEBHOOKS), timeout=30)
        await _walks(bus, ["a", "b"], n=3)
        store = WebhookStore(bus)
        pending = await wait_for(lambda: _n_deliveries(store, 8), timeout=15)
        assert all(d["status"] in ("pending", "delivering") for d in pending)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert rec.hits == []
        rec.start()
        proc = start()
        await wait_for(lambda: _count(rec, 8), timeout=30)
        await asyncio.sleep(0.5)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        rec.stop()
    _assert_in_order_once(rec, await alerts_in_stream(bus))


async def _n_deliveries(store, n):
    d = await store.deliveries(limit=100)
    return d if len(d) >= n else None


async def test_two_alerts_processes_deliver_each_change_once_in_order(bus):
    """Two alerts stages share the lifecycle (per-scope locks), the fan-out (one leader) and
    the sending (atomic claims): still once per key, in order per alert."""
    import contextlib

    rec = Receiver(SECRET, refuse_first=3).start()
    try:
        settings = await _setup(bus, rec.url)
        async with contextlib.AsyncExitStack() as stack:
            for name in ("p1", "p2"):
                await stack.enter_async_context(running(bus, settings, consumer=name))
            await _walks(bus, ["n", "e", "s", "w"], n=4)
            alerts = await alerts_in_stream(bus)
            assert len(alerts) == 20
            await wait_for(lambda: _count(rec, 20), timeout=20)
            await asyncio.sleep(0.3)
        _assert_in_order_once(rec, alerts)
    finally:
        rec.stop()


@pytest.mark.integration
async def test_killed_mid_request_is_sent_again_with_the_same_key(bus, tmp_path: Path):
    """SIGKILL while a request is in flight: after the lease, another process sends it again
    with the same Vigil-Delivery, which is how the receiver recognises the repeat."""
    rec = Receiver(SECRET, stall_s=4).start()
    cfg = tmp_path / "vigil.yaml"
    cfg.write_text(
        "rules:\n  - {id: person, label: person, quiet_s: 2}\n"
        "alerts:\n  tick_s: 3600\n  leader_ttl_s: 1\n  webhooks:\n"
        "    backoff_base_s: 0.2\n    lease_s: 2\n    timeout_s: 1\n"
        f"    endpoints:\n      - {{id: hook, url: '{rec.url}', secret_env: HOOK_SECRET, allow_private: true}}\n"
    )
    env = {**os.environ, "REDIS_URL": bus.url, "HOOK_SECRET": SECRET}
    args = [sys.executable, "-m", "vigil.cli", "alerts", "-c", str(cfg)]
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await wait_for(lambda: bus.group_info(bus.keys.alerts, bus.keys.WEBHOOKS), timeout=30)
        base = time.time() - 30
        await bus.publish(bus.keys.events, event("gate", "gate-0", base, base + 4, ["person"]))
        store = WebhookStore(bus)
        (d,) = await wait_for(lambda: store.deliveries(status="delivering"), timeout=15)
        await asyncio.sleep(0.3)  # the request is at the receiver, which holds it
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        done = await wait_for(lambda: _status(store, d["id"], "delivered"), timeout=30)
        await wait_for(lambda: _n_hits(rec, 2), timeout=10)  # the held first try lands too
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        rec.stop()
    assert done["attempts"] == 2
    keys = [h.delivery for h in rec.hits]
    assert keys == [d["id"], d["id"]] and sorted(h.attempt for h in rec.hits) == [1, 2]
    assert all(h.signed_ok for h in rec.hits)


async def _n_hits(rec, n):
    return len(rec.hits) >= n


async def _status(store, dlv, status):
    d = await store.get(dlv)
    return d if d and d["status"] == status else None


async def test_event_webhooks_and_filters(bus):
    from bus.messages import Alert, utc

    from alerts.webhooks import wants

    rec = Receiver(SECRET).start()
    try:
        store = WebhookStore(bus)
        await store.put_endpoint(WebhookEndpoint(id="ev", url=rec.url, secret=SECRET, allow_private=True,
                                                 events=["event"], cameras=["a"]))
        async with running(bus, AlertsSettings(tick_s=3600, webhooks=FAST)):
            base = time.time() - 30
            for i in range(4):
                for cam in ("a", "b"):
                    await bus.publish(bus.keys.events, event(cam, f"{cam}-{i}", base + i, base + i + 1, ["motion"]))
            await wait_for(lambda: _count(rec, 4), timeout=10)
            await asyncio.sleep(0.3)
        got = rec.accepted()
        assert [h.body["id"] for h in got] == [f"evt-a-{i}" for i in range(4)]  # camera a only, in order
        assert {h.event for h in got} == {"event"} and all(h.signed_ok for h in got)
    finally:
        rec.stop()
    t = utc(time.time())
    al = Alert(id="x", state="open", rule="r", camera="c", severity="info", title="", message="", event_ids=[],
               first_seen=t, last_seen=t, snapshot_url="")
    ep = WebhookEndpoint(id="e", url="https://h.example/", secret=SECRET, events=["alert.open"], min_severity="warning")
    assert not wants(ep, al)
    import msgspec

    assert wants(ep, msgspec.structs.replace(al, severity="critical"))
    assert not wants(ep, msgspec.structs.replace(al, severity="critical", state="update"))
    assert not wants(msgspec.structs.replace(ep, rules=["other"]), msgspec.structs.replace(al, severity="critical"))
