"""Signed webhooks with retries from a durable queue in Redis, and a dead-letter list.

Two loops per alerts process:
- the dispatcher reads `alerts` (and `events`) through the `webhooks` consumer group and
  enqueues one delivery per matching endpoint (deterministic ids: re-reading after a crash
  enqueues nothing twice), then acks;
- the sender claims due deliveries (a lease, so a dead sender's work comes back), POSTs
  them, and completes each as delivered, retry (exponential backoff with jitter) or dead.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from dataclasses import dataclass

import httpx
import msgspec

from alerts import signing
from alerts.channels import Channel
from alerts.leader import Leader
from alerts.lifecycle import SEVERITY_RANK
from alerts.links import absolute
from alerts.settings import WebhookSettings
from alerts.ssrf import TargetRefused, check_url, resolve
from alerts.tasks import run_together
from bus import messages
from bus.connection import Bus, redact_url
from bus.metrics import StageMetrics
from bus.messages import Alert, PublicMessage, WebhookEndpoint
from bus.webhooks import Delivery, WebhookStore, delivery_id, secret_problem

log = logging.getLogger("vigil.alerts.webhooks")
USER_AGENT = "Vigil-Webhooks/1"


class _RedactHttpxUrls(logging.Filter):
    """httpx logs every request's full URL at INFO; a webhook URL's query may hold a token."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args and isinstance(record.args, tuple):
            record.args = tuple(redact_url(str(a)) if isinstance(a, httpx.URL) else a for a in record.args)
        return True


logging.getLogger("httpx").addFilter(_RedactHttpxUrls())


def event_name(msg: PublicMessage) -> str:
    return f"alert.{msg.state}" if isinstance(msg, Alert) else "event"


def wants(ep: WebhookEndpoint, msg: PublicMessage) -> bool:
    if not ep.enabled:
        return False
    if isinstance(msg, Alert) and not msg.notify:
        return False  # evidence folded in silently: for the dashboard and the API, not a notification
    name = event_name(msg)
    if not any(f == "*" or f == name or (f == "alert.*" and name.startswith("alert.")) for f in ep.events):
        return False
    if ep.cameras and msg.camera not in ep.cameras:
        return False
    if isinstance(msg, Alert):
        if ep.rules and msg.rule not in ep.rules:
            return False
        if SEVERITY_RANK[msg.severity] < SEVERITY_RANK[ep.min_severity]:
            return False
    return True


def backoff(attempt: int, s: WebhookSettings) -> float:
    """Delay after try number `attempt` failed: base * 2^(attempt-1), capped, part of it random
    so many endpoints failing together do not retry in lockstep."""
    delay = min(s.backoff_max_s, s.backoff_base_s * 2 ** (attempt - 1))
    return delay * (1 - s.jitter * random.random())


@dataclass(slots=True)
class Result:
    ok: bool
    code: int | None = None
    error: str = ""
    permanent: bool = False


class WebhookSender:
    """One POST: signed, timed out, redirects not followed, at most a little of the response read."""

    def __init__(self, s: WebhookSettings) -> None:
        self.s = s
        self.client = self._new_client()
        # https targets are reached by their checked IP with the name as SNI; connections are
        # pooled per IP, so each host name gets its own pool and never rides another's TLS session.
        self.tls_clients: dict[str, httpx.AsyncClient] = {}

    def _new_client(self) -> httpx.AsyncClient:
        s = self.s
        return httpx.AsyncClient(
            follow_redirects=False, trust_env=False,
            timeout=httpx.Timeout(s.timeout_s, connect=s.connect_timeout_s),
            limits=httpx.Limits(max_connections=s.concurrency * 2, max_keepalive_connections=s.concurrency),
        )

    def _client_for(self, sni: str | None) -> httpx.AsyncClient:
        if not sni:
            return self.client
        if sni not in self.tls_clients:  # bounded by the endpoints an admin registered
            self.tls_clients[sni] = self._new_client()
        return self.tls_clients[sni]

    async def close(self) -> None:
        await self.client.aclose()
        for c in self.tls_clients.values():
            await c.aclose()

    async def send(self, ep: WebhookEndpoint, d: Delivery) -> Result:
        try:
            target = await resolve(ep.url, ep.allow_private)
        except TargetRefused as exc:
            return Result(False, error=f"refused: {exc}", permanent=True)
        except ConnectionError as exc:
            return Result(False, error=str(exc))
        t = int(time.time())
        headers = {
            **target.headers,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            # Standard Webhooks: id, timestamp and body signed together, at each try (so `t` is
            # fresh and receivers refuse stale ones; the id is the idempotency key).
            **signing.standard_headers(ep.secret, d.id, d.body, t),
            "Vigil-Event": d.event,
            "Vigil-Delivery": d.id,
            "Vigil-Attempt": str(d.attempt),
        }
        if self.s.legacy_signature:
            headers["Vigil-Signature"] = signing.header(ep.secret, d.body, t)  # migration period only
        try:
            async with asyncio.timeout(self.s.timeout_s + 1):
                client = self._client_for(target.extensions.get("sni_hostname"))
                async with client.stream("POST", target.url, content=d.body, headers=headers,
                                              extensions=target.extensions) as resp:
                    # The body is not trusted: read at most a little, never parse it.
                    seen = 0
                    async for chunk in resp.aiter_raw():
                        seen += len(chunk)
                        if seen >= self.s.max_response_bytes:
                            break
                    code = resp.status_code
        except (httpx.TimeoutException, TimeoutError):
            return Result(False, error="timeout")
        except httpx.HTTPError as exc:
            # Messages may quote the URL (and any token in its query): keep only the kind.
            return Result(False, error=f"{type(exc).__name__}")
        if 200 <= code < 300:
            return Result(True, code)
        if 300 <= code < 400:
            return Result(False, code, f"HTTP {code}: redirects are not followed")
        return Result(False, code, f"HTTP {code}")


class WebhookChannel(Channel):
    name = "webhooks"

    def __init__(self, bus: Bus, settings: WebhookSettings, consumer: str, public_url: str | None = None) -> None:
        self.bus = bus
        self.s = settings
        self.consumer = consumer
        self.public_url = public_url
        self.store = WebhookStore(bus)
        self.sender = WebhookSender(settings)
        self.endpoints: dict[str, WebhookEndpoint] = {}
        self.stats = {"enqueued": 0, "delivered": 0, "retried": 0, "dead": 0}
        self.metrics = StageMetrics(bus)

    async def prepare(self) -> None:
        k = self.bus.keys
        # New groups start at the end: an endpoint gets what happens from now on, and a
        # restart continues exactly where the group left off.
        await self.bus.ensure_group(k.alerts, k.WEBHOOKS, start="$")
        await self.bus.ensure_group(k.events, k.WEBHOOKS, start="$")

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await run_together([self._dispatch_loop(stop), self._send_loop(stop), self._metrics_loop(stop)], stop)
        finally:
            await self.sender.close()
            await self.metrics.flush()

    async def _metrics_loop(self, stop: asyncio.Event, every_s: float = 1.0) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), every_s)
            except asyncio.TimeoutError:
                pass
            await self.metrics.flush()

    # -- alert changes -> deliveries ------------------------------------------------------
    async def _dispatch_loop(self, stop: asyncio.Event) -> None:
        leader = Leader(self.bus, "webhook-dispatch", self.consumer)
        try:
            await self._dispatch(stop, leader)
        finally:
            await leader.resign()

    async def _dispatch(self, stop: asyncio.Event, leader: Leader) -> None:
        k = self.bus.keys
        leading = False
        last_refresh = last_lease = 0.0
        while not stop.is_set():
            if time.monotonic() - last_refresh > 1.0:
                self.endpoints = await self.store.endpoints()
                last_refresh = time.monotonic()
            rows: list[tuple[str, str, PublicMessage | None]] = []
            if time.monotonic() - last_lease > 1.0 or not leading:
                last_lease = time.monotonic()
                state = await leader.hold()
                leading = state > 0
                if state == 2:
                    # Just took over: first whatever the previous leader read but never acked,
                    # in stream order (deterministic delivery ids make repeats no-ops).
                    for stream in (k.alerts, k.events):
                        rows += [(stream, i, m) for i, m in await self.bus.autoclaim(
                            stream, k.WEBHOOKS, self.consumer, PublicMessage, min_idle_ms=0, count=1000)]
            if not leading:
                await asyncio.sleep(0.5)  # another process fans out; this one only sends
                continue
            if not rows:
                reply = await self.bus.r.xreadgroup(k.WEBHOOKS, self.consumer, {k.alerts: ">", k.events: ">"},
                                                    count=100, block=250)
                for stream, entries in reply or []:
                    for entry_id, fields in entries:
                        rows.append((stream.decode(), entry_id.decode(), self.bus.decode_entry(fields, PublicMessage)))
            for stream, entry_id, msg in rows:
                if msg is not None:
                    await self.dispatch(msg)
                await self.bus.ack(stream, k.WEBHOOKS, entry_id)

    async def dispatch(self, msg: PublicMessage) -> int:
        n = 0
        body: bytes | None = None
        for ep in self.endpoints.values():
            if not wants(ep, msg):
                continue
            body = body or messages.to_json(absolute(msg, self.public_url))
            if isinstance(msg, Alert):
                order, source = msg.id, f"{msg.id}:{msg.seq}"
            else:
                order, source = f"camera:{msg.camera}", msg.id
            if await self.store.enqueue(ep.id, event_name(msg), order, body, delivery_id(ep.id, source)):
                n += 1
        self.stats["enqueued"] += n
        return n

    # -- deliveries -> HTTP ----------------------------------------------------------------
    async def _send_loop(self, stop: asyncio.Event) -> None:
        slots = asyncio.Semaphore(self.s.concurrency)
        inflight: set[asyncio.Task] = set()
        last_trim = 0.0
        try:
            while not stop.is_set():
                await slots.acquire()
                slots.release()
                free = max(1, slots._value)  # noqa: SLF001 - asyncio exposes no accessor
                # A lease shorter than a request would hand a live try to another sender.
                batch = await self.store.claim(free, max(self.s.lease_s, self.s.timeout_s + 2))
                if time.monotonic() - last_trim > 60:
                    last_trim = time.monotonic()
                    await self.store.trim(self.s.retention_s)
                if not batch:
                    nxt = await self.store.next_due()
                    wait = 1.0 if nxt is None else min(1.0, nxt - time.time())
                    if wait > 0:
                        await self.store.wait_for_work(wait)
                    continue
                for d in batch:
                    await slots.acquire()
                    task = asyncio.create_task(self._deliver(d, slots))
                    inflight.add(task)
                    task.add_done_callback(inflight.discard)
        finally:
            if inflight:
                # Let tries in flight finish briefly; unfinished ones keep their lease and are
                # sent again after it (same delivery id) by whichever process runs then.
                _, late = await asyncio.wait(list(inflight), timeout=min(5.0, self.s.timeout_s))
                for t in late:
                    t.cancel()
                await asyncio.gather(*late, return_exceptions=True)

    async def _deliver(self, d: Delivery, slots: asyncio.Semaphore) -> None:
        try:
            ep = self.endpoints.get(d.endpoint) or await self.store.endpoint(d.endpoint)
            if ep is None or not ep.enabled:
                await self.store.complete(d, "dead", error="endpoint removed or disabled")
                self.stats["dead"] += 1
                return
            t0 = time.monotonic()
            res = await self.sender.send(ep, d)
            self.metrics.observe("vigil_webhook_request_duration_seconds", time.monotonic() - t0, endpoint=ep.id)
            if res.ok:
                await self.store.complete(d, "delivered", code=res.code, retention_s=self.s.retention_s)
                self.stats["delivered"] += 1
                self.metrics.inc("vigil_webhook_deliveries_total", endpoint=ep.id, outcome="delivered")
                return
            if res.permanent or d.attempt >= self.s.max_attempts:
                await self.store.complete(d, "dead", error=res.error, code=res.code)
                self.stats["dead"] += 1
                self.metrics.inc("vigil_webhook_deliveries_total", endpoint=ep.id, outcome="dead")
                log.warning("webhook %s to %s (%s) dead after %d tries: %s", d.id, ep.id, redact_url(ep.url),
                            d.attempt, res.error)
                return
            delay = backoff(d.attempt, self.s)
            await self.store.complete(d, "retry", next_due=time.time() + delay, error=res.error, code=res.code)
            self.stats["retried"] += 1
            self.metrics.inc("vigil_webhook_deliveries_total", endpoint=ep.id, outcome="retry")
            log.info("webhook %s to %s try %d failed (%s); again in %.1fs", d.id, ep.id, d.attempt, res.error, delay)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("webhook delivery %s failed unexpectedly; retried after its lease", d.id)
        finally:
            slots.release()


async def seed_endpoints(bus: Bus, s: WebhookSettings) -> None:
    """Config endpoints go into the registry; their secrets come from the environment."""
    store = WebhookStore(bus)
    for cfg in s.endpoints:
        secret = os.environ.get(cfg.secret_env, "")
        if len(secret) < 16:
            log.error("webhook %s skipped: environment variable %s is unset or shorter than 16 characters",
                      cfg.id, cfg.secret_env)
            continue
        problem = secret_problem(secret)
        if problem:
            log.error("webhook %s skipped: %s (environment variable %s)", cfg.id, problem, cfg.secret_env)
            continue
        try:
            check_url(cfg.url, cfg.allow_private)
            ep = msgspec.convert({**cfg.model_dump(exclude={"secret_env"}), "secret": secret}, WebhookEndpoint)
        except (TargetRefused, msgspec.ValidationError) as exc:
            log.error("webhook %s skipped: %s", cfg.id, exc)
            continue
        await store.put_endpoint(ep)


__all__ = ["WebhookChannel", "WebhookSender", "backoff", "event_name", "seed_endpoints", "wants"]
