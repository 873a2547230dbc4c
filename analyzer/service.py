"""The analyzer stage: a worker on the `packets` consumer group.

At-least-once: a packet is acked only after its event is in the `events` stream; event ids
derive from packet ids and are written once, so a retry never duplicates. A worker reads a
window of packets ahead (`prefetch`) and renews its claim on every packet it holds, so only
packets of a worker that stopped renewing (a dead one) are reclaimed by XAUTOCLAIM after
the visibility timeout, however long a model call takes.

Within the window: per camera the newest packet goes first, cameras take turns (one
camera's burst cannot starve another), packets older than `stale_after_s` are skipped
(acked, counted, logged), and at most `backend.concurrency` calls of up to
`backend.max_batch` packets each run at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time

from redis.exceptions import RedisError

from analyzer.backends import Backend
from analyzer.backends.base import Analysis, BackendError, BackendUnavailable
from analyzer.events import build_event, event_id
from analyzer.metrics import AnalyzerMetrics
from analyzer.queue import FairQueue, Held
from analyzer.replay import ReplayWorker
from analyzer.settings import AnalyzerSettings
from bus.connection import Bus
from bus.messages import Packet, PacketSkipped, Rule
from bus.registry import Registry

log = logging.getLogger("vigil.analyzer")
PROMPT_TTL_S = 7 * 86400
REGISTRY_REFRESH_S = 2.0


def _applies(rule: Rule, camera: str) -> bool:
    return rule.enabled and (not rule.cameras or camera in rule.cameras)


class AnalyzerService:
    def __init__(self, bus: Bus, settings: AnalyzerSettings, backend: Backend, consumer: str | None = None) -> None:
        self.bus = bus
        self.s = settings
        self.backend = backend
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.registry = Registry(bus)
        self.queue = FairQueue(newest_first=settings.newest_first)
        self.metrics = AnalyzerMetrics(backend.name, backend.tokens_note)
        self.held: dict[str, Packet] = {}  # entry id -> packet, waiting or in a call (renewed)
        self.busy = 0  # backend calls in flight
        self.rules: list[Rule] = []
        self.contexts: dict[str, str] = {}
        self._tasks: set[asyncio.Task] = set()
        self._wake = asyncio.Event()
        self._last_claim = 0.0

    # -- counters kept for callers of the skeleton -----------------------------------------
    @property
    def done(self) -> int:
        return self.metrics.events

    @property
    def skipped_stale(self) -> int:
        return self.metrics.skipped_stale

    @property
    def failures(self) -> int:
        return self.metrics.failures

    @property
    def stream(self) -> str:
        return self.bus.keys.packets

    @property
    def group(self) -> str:
        return self.bus.keys.ANALYZERS

    # -- main loop ------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        await self.bus.ensure_group(self.stream, self.group, start="0")
        await self.backend.start()
        await self._refresh_registry()
        aux = [asyncio.create_task(self._housekeeping(stop), name="analyzer-housekeeping"),
               asyncio.create_task(ReplayWorker(self.bus, self.backend, self.consumer).run(stop), name="replay")]
        try:
            while not stop.is_set():
                await self._refill()
                await self._skip_stale()
                self._dispatch()
                if self.queue or self._room() <= 0:
                    # Work is waiting for a free slot (or the window is full): sleep until a call ends.
                    self._wake.clear()
                    try:
                        await asyncio.wait_for(self._wake.wait(), 0.25)
                    except asyncio.TimeoutError:
                        pass
        finally:
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            for t in aux:
                t.cancel()
            await asyncio.gather(*aux, return_exceptions=True)
            await self.backend.close()
            # Packets still waiting stay pending in the group: another worker reclaims them.
            await self._publish_metrics(final=True)

    def _room(self) -> int:
        return self.s.prefetch - len(self.held)

    async def _refill(self) -> None:
        room = self._room()
        if room <= 0:
            return
        rows: list = []
        if time.monotonic() - self._last_claim > min(5.0, self.s.visibility_timeout_s / 2):
            self._last_claim = time.monotonic()
            rows = await self.bus.autoclaim(self.stream, self.group, self.consumer, Packet,
                                            min_idle_ms=int(self.s.visibility_timeout_s * 1000), count=room)
            rows = [(i, p) for i, p in rows if i not in self.held]
            if rows:
                self.metrics.reclaim(len(rows))
                log.info("reclaimed %d packet(s) left pending by a stopped worker", len(rows))
        if not rows:
            # Nothing waiting: block for new packets (a call ending meanwhile has nothing to
            # dispatch). Packets waiting: only top up the window, then wait for a free slot.
            block = 500 if not self.queue else None
            rows = await self.bus.read_group(self.stream, self.group, self.consumer, Packet, count=room,
                                             block_ms=block)  # type: ignore[arg-type]
        for entry_id, packet in rows:
            if packet is None or not packet.frames:
                log.warning("packet %s undecodable or empty; acked and dropped", entry_id)
                await self.bus.ack(self.stream, self.group, entry_id)
                continue
            self.held[entry_id] = packet
            self.queue.push(entry_id, packet)

    async def _skip_stale(self) -> None:
        dropped = self.queue.drop_older_than(time.time() - self.s.stale_after_s)
        if not dropped:
            return
        # Said on the bus before the ack, so whoever waits for these verdicts (the alerts stage,
        # which keeps each camera's verdicts in capture order) stops waiting.
        for h in dropped:
            await self.bus.publish(self.bus.keys.packets_skipped, PacketSkipped(
                camera=h.packet.camera, packet_id=h.packet.id, wall=h.wall, at=time.time()), maxlen=100_000)
        await self.bus.ack(self.stream, self.group, *(h.entry_id for h in dropped))
        for h in dropped:
            self.held.pop(h.entry_id, None)
            log.warning("packet %s skipped: %.1fs old (stale_after_s=%.0f)", h.packet.id, time.time() - h.wall,
                        self.s.stale_after_s)
        self.metrics.stale(len(dropped))

    def _dispatch(self) -> None:
        while self.queue and self.busy < self.backend.concurrency and self.backend.available():
            batch = self.queue.take(self.backend.max_batch)
            self.busy += 1
            task = asyncio.create_task(self._handle(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    # -- one backend call -----------------------------------------------------------------
    async def _handle(self, batch: list[Held]) -> None:
        packets = [h.packet for h in batch]
        cams = {p.camera for p in packets}
        rules = {c: [r for r in self.rules if _applies(r, c)] for c in cams}
        contexts = {c: self.contexts.get(c, "") for c in cams}
        self.metrics.in_flight += len(batch)
        t0 = time.perf_counter()
        try:
            try:
                analyses = await self.backend.analyze(packets, rules, contexts)
            except BackendUnavailable as exc:
                # Nothing was tried: keep the packets (still held and renewed) for later.
                log.warning("backend %s unavailable, %d packet(s) wait: %s", self.backend.name, len(batch), exc)
                for h in batch:
                    self.queue.push(h.entry_id, h.packet)
                return
            except Exception as exc:  # the packets are never lost: they become error events
                ids = ", ".join(p.id for p in packets)
                if isinstance(exc, BackendError):  # expected failure modes: no traceback
                    log.error("backend %s failed on %s: %s", self.backend.name, ids, exc)
                else:
                    log.exception("backend %s failed on %s", self.backend.name, ids)
                analyses = [Analysis(summary="analysis failed", labels=["motion"] if p.motion.area > 0 else [],
                                     status="error", raw=f"{type(exc).__name__}: {exc}"[:4000]) for p in packets]
            self.metrics.call(len(batch))
            latency = time.perf_counter() - t0
            for h, analysis in zip(batch, analyses, strict=True):
                await self._write(h, analysis, latency)
        finally:
            self.metrics.in_flight -= len(batch)
            self.busy -= 1
            self._wake.set()

    async def _write(self, h: Held, analysis: Analysis, latency_s: float, *, last_resort: bool = False) -> None:
        try:
            event = build_event(h.packet, analysis, backend=self.backend.name, model=self.backend.model,
                                latency_ms=latency_s * 1000)
            if analysis.prompt:
                # Kept beside the event (not in it: events travel to every client and webhook).
                side = json.dumps({"prompt": analysis.prompt[:20_000], "answer": analysis.answer[:20_000]})
                await self.bus.r.set(self.bus.keys.event_prompt(event.id), side, ex=PROMPT_TTL_S)
            await self.bus.publish_once(self.bus.keys.events, self.bus.keys.once("event", event.id), event)
            await self.bus.ack(self.stream, self.group, h.entry_id)
            self.metrics.event(analysis.status, latency_s, time.time() - h.wall, analysis.visual_tokens,
                               analysis.escalated, analysis.seen)
        except (RedisError, OSError):
            # Redis is away: not acked, so it stays pending and is reclaimed after the visibility timeout.
            log.exception("packet %s not acked", h.packet.id)
        except Exception as exc:
            # The analysis itself cannot be written (e.g. a value that does not encode): a retry
            # would fail the same way forever (a poison packet), so it becomes an error event.
            log.exception("packet %s: analysis not writable; recorded as an error event", h.packet.id)
            if not last_resort:
                failed = Analysis(summary="analysis failed", labels=["motion"] if h.packet.motion.area > 0 else [],
                                  status="error", raw=f"{type(exc).__name__}: {exc}"[:4000])
                await self._write(h, failed, latency_s, last_resort=True)
            else:  # not even an error event can be written: drop it rather than loop on it
                await self.bus.ack(self.stream, self.group, h.entry_id)
        finally:
            self.held.pop(h.entry_id, None)

    # -- background chores -----------------------------------------------------------------
    async def _housekeeping(self, stop: asyncio.Event) -> None:
        renew_every = self.s.visibility_timeout_s / 3
        last = {"renew": time.monotonic(), "registry": time.monotonic(), "metrics": 0.0}
        while not stop.is_set():
            await asyncio.sleep(0.2)
            now = time.monotonic()
            try:
                if now - last["renew"] >= renew_every:
                    last["renew"] = now
                    await self._renew()
                if now - last["registry"] >= REGISTRY_REFRESH_S:
                    last["registry"] = now
                    await self._refresh_registry()
                if now - last["metrics"] >= self.s.metrics_interval_s:
                    last["metrics"] = now
                    await self._publish_metrics()
            except Exception:
                log.exception("analyzer housekeeping failed; retrying")

    async def _renew(self) -> None:
        """Reset the idle time of every packet this worker still owns and holds."""
        if not self.held:
            return
        ids = list(self.held)
        mine = await self.bus.r.xpending_range(self.stream, self.group, min=min(ids, key=_sid_key),
                                               max=max(ids, key=_sid_key), count=len(ids) * 2 + 10,
                                               consumername=self.consumer)
        owned = [_s(p["message_id"]) for p in mine]
        owned = [i for i in owned if i in self.held]
        if owned:
            await self.bus.r.xclaim(self.stream, self.group, self.consumer, 0, owned, justid=True)

    async def _refresh_registry(self) -> None:
        self.rules = list((await self.registry.rules()).values())
        self.contexts = {c.id: c.context for c in (await self.registry.cameras()).values()}

    async def _group_counts(self) -> tuple[int | None, int | None, float]:
        """(lag, pending, age of the oldest undelivered packet in seconds). Redis 6.2 has no
        `lag`: it is 0 when nothing waits and unknown otherwise; the oldest waiting entry's
        id (its creation time) is one cheap read either way."""
        info = await self.bus.group_info(self.stream, self.group)
        if not info:
            return None, None, 0.0
        lag = info.get("lag")
        lag = int(lag) if isinstance(lag, int) else None
        oldest = 0.0
        last = info.get("last-delivered-id") or "0-0"
        rows = await self.bus.r.xrange(self.stream, min=f"({last}", max="+", count=1)
        if rows:
            oldest = max(0.0, time.time() - int(_s(rows[0][0]).split("-")[0]) / 1000)
        elif lag is None:
            lag = 0
        return lag, int(info.get("pending") or 0), oldest

    async def _publish_metrics(self, final: bool = False) -> None:
        try:
            lag, pending, oldest = await self._group_counts()
            self.metrics.gauges(len(self.queue), self.metrics.in_flight, lag, pending, oldest)
            self.metrics.extra = _backend_extra(self.backend)
            snap = self.metrics.snapshot(self.consumer)
            ttl = 60 if final else max(10, int(self.s.metrics_interval_s * 5))
            await self.bus.r.set(self.bus.keys.analyzer_metrics(self.consumer), json.dumps(snap), ex=ttl)
        except Exception:
            log.warning("analyzer metrics not published", exc_info=True)


def _backend_extra(backend: Backend) -> dict[str, object]:
    breaker = getattr(backend, "breaker", None)
    out: dict[str, object] = {}
    if breaker is not None:
        out["circuit"] = breaker.state
        out["circuit_opened"] = breaker.opened_count
    if hasattr(backend, "retries"):
        out["retries"] = backend.retries
    info = getattr(backend, "info", None)
    if callable(info):
        out.update(info())  # e.g. the cpu backend's detector, and whether it is a fallback
    return out


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


def _sid_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


__all__ = ["AnalyzerService", "event_id"]
