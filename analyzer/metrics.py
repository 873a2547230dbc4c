"""Analyzer metrics per backend: Prometheus series (process-wide registry, labelled by
backend, so `vigil serve`'s /metrics can expose them) plus a small JSON snapshot per
worker that the service writes to Redis for the dashboard.
"""

from __future__ import annotations

import time
from collections import deque

from prometheus_client import Counter, Gauge, Histogram

_L = ["backend"]
QUEUE_DEPTH = Gauge("vigil_analyzer_queue_depth", "packets read ahead and waiting in this worker", _L)
GROUP_LAG = Gauge("vigil_analyzer_group_lag", "packets not yet delivered to any worker (count: Redis >= 7)", _L)
GROUP_OLDEST = Gauge("vigil_analyzer_group_oldest_wait_seconds", "age of the oldest packet no worker has read yet", _L)
IN_FLIGHT = Gauge("vigil_analyzer_in_flight", "packets inside backend calls now", _L)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64)
AGE_BUCKETS = (0.25, 0.5, 1, 2, 4, 8, 16, 32, 64)
LATENCY = Histogram("vigil_analyzer_latency_seconds", "backend call latency per packet", _L, buckets=LATENCY_BUCKETS)
LATENCY_Q = Gauge("vigil_analyzer_latency_quantile_seconds", "recent backend latency quantiles", _L + ["quantile"])
AGE = Histogram("vigil_analyzer_event_age_seconds", "capture of the last frame to event written", _L,
                buckets=AGE_BUCKETS)
TOKENS = Histogram("vigil_analyzer_visual_tokens_per_packet",
                   "visual tokens one packet cost (minicpm packs 6 frames into 64; vLLM spends 64 per frame)", _L,
                   buckets=(0, 64, 128, 192, 256, 384, 768))
BATCH = Histogram("vigil_analyzer_batch_packets", "packets per backend call", _L, buckets=(1, 2, 3, 4, 6, 8, 16, 32))
EVENTS = Counter("vigil_analyzer_events", "events written", _L + ["status"])
SKIPPED_STALE = Counter("vigil_analyzer_skipped_stale", "packets skipped as older than stale_after_s", _L)
FAILURES = Counter("vigil_analyzer_failures", "packets whose backend call failed (error events)", _L)
ESCALATIONS = Counter("vigil_analyzer_thinking_escalations", "rules re-asked with thinking", _L)
SEEN = Counter("vigil_analyzer_packets_seen", "packets whose image slots all held visual tokens when the model "
               "started answering (measured in-process; minicpm)", _L)
BLIND = Counter("vigil_analyzer_packets_blind", "packets the model answered without (all of) their frames: error "
                "events, never verdicts", _L)
RECLAIMED = Counter("vigil_analyzer_reclaimed", "packets taken over from a dead worker (XAUTOCLAIM)", _L)


class _Buckets:
    """Cumulative bucket counts since the worker started, published in the snapshot so the
    web stage's /metrics shows every worker's histogram, wherever it runs."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        self.n = 0
        self.sum = 0.0

    def observe(self, v: float) -> None:
        self.n += 1
        self.sum += v
        for i, le in enumerate(self.bounds):
            if v <= le:
                self.counts[i] += 1

    def view(self) -> dict:
        return {"le": list(self.bounds), "counts": list(self.counts), "count": self.n, "sum": round(self.sum, 6)}


def _quantile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    i = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[i]


class AnalyzerMetrics:
    """One worker's view. Prometheus series are shared per backend; the percentiles come
    from a rolling window of this worker's recent calls."""

    def __init__(self, backend: str, tokens_note: str = "", window: int = 1000) -> None:
        self.backend = backend
        self.tokens_note = tokens_note
        self.started = time.time()
        self.latencies: deque[float] = deque(maxlen=window)
        self.ages: deque[float] = deque(maxlen=window)
        self.events = 0
        self.unparsed = 0
        self.failures = 0
        self.skipped_stale = 0
        self.escalations = 0
        self.reclaimed = 0
        self.packets_seen = 0
        self.packets_blind = 0
        self.calls = 0
        self.packets_in_calls = 0
        self.tokens_total = 0
        self.tokens_events = 0
        self.queue_depth = 0
        self.in_flight = 0
        self.group_lag: int | None = None
        self.group_pending: int | None = None
        self.group_oldest_s = 0.0
        self.extra: dict[str, object] = {}
        self.latency_hist = _Buckets(LATENCY_BUCKETS)
        self.age_hist = _Buckets(AGE_BUCKETS)

    def call(self, packets: int) -> None:
        self.calls += 1
        self.packets_in_calls += packets
        BATCH.labels(self.backend).observe(packets)

    def event(self, status: str, latency_s: float, age_s: float, visual_tokens: int, escalated: int = 0,
              seen: bool | None = None) -> None:
        """`seen`: the backend measured that the model received the packet's frames (None: it cannot tell)."""
        self.events += 1
        if seen is True:
            self.packets_seen += 1
            SEEN.labels(self.backend).inc()
        elif seen is False:
            self.packets_blind += 1
            BLIND.labels(self.backend).inc()
        self.latencies.append(latency_s)
        self.ages.append(age_s)
        if status != "error":  # a failed call spent no tokens worth averaging
            self.tokens_total += visual_tokens
            self.tokens_events += 1
        if status == "unparsed":
            self.unparsed += 1
        elif status == "error":
            self.failures += 1
            FAILURES.labels(self.backend).inc()
        if escalated:
            self.escalations += escalated
            ESCALATIONS.labels(self.backend).inc(escalated)
        EVENTS.labels(self.backend, status).inc()
        LATENCY.labels(self.backend).observe(latency_s)
        AGE.labels(self.backend).observe(max(0.0, age_s))
        self.latency_hist.observe(latency_s)
        self.age_hist.observe(max(0.0, age_s))
        if status != "error":
            TOKENS.labels(self.backend).observe(visual_tokens)

    def stale(self, n: int = 1) -> None:
        self.skipped_stale += n
        SKIPPED_STALE.labels(self.backend).inc(n)

    def reclaim(self, n: int) -> None:
        self.reclaimed += n
        RECLAIMED.labels(self.backend).inc(n)

    def gauges(self, queue_depth: int, in_flight: int, group_lag: int | None, group_pending: int | None,
               group_oldest_s: float = 0.0) -> None:
        self.queue_depth, self.in_flight, self.group_lag, self.group_pending = queue_depth, in_flight, group_lag, group_pending
        self.group_oldest_s = group_oldest_s
        GROUP_OLDEST.labels(self.backend).set(group_oldest_s)
        QUEUE_DEPTH.labels(self.backend).set(queue_depth)
        IN_FLIGHT.labels(self.backend).set(in_flight)
        if group_lag is not None:
            GROUP_LAG.labels(self.backend).set(group_lag)
        lat = sorted(self.latencies)
        for q in (0.5, 0.95, 0.99):
            LATENCY_Q.labels(self.backend, str(q)).set(_quantile(lat, q))

    def snapshot(self, worker: str) -> dict:
        lat = sorted(self.latencies)
        ages = sorted(self.ages)
        return {
            "v": 1,
            "worker": worker,
            "backend": self.backend,
            "at": round(time.time(), 3),
            "uptime_s": round(time.time() - self.started, 1),
            "queue_depth": self.queue_depth,
            "group_lag": self.group_lag,
            "group_pending": self.group_pending,
            "group_oldest_wait_s": round(self.group_oldest_s, 2),
            "in_flight": self.in_flight,
            "events": self.events,
            "unparsed": self.unparsed,
            "failures": self.failures,
            "skipped_stale": self.skipped_stale,
            "reclaimed": self.reclaimed,
            "thinking_escalations": self.escalations,
            "packets_seen": self.packets_seen,
            "packets_blind": self.packets_blind,
            "calls": self.calls,
            "mean_batch": round(self.packets_in_calls / self.calls, 2) if self.calls else 0.0,
            "latency_ms": {"p50": round(_quantile(lat, 0.5) * 1000, 1), "p95": round(_quantile(lat, 0.95) * 1000, 1),
                           "p99": round(_quantile(lat, 0.99) * 1000, 1), "n": len(lat)},
            "event_age_ms": {"p50": round(_quantile(ages, 0.5) * 1000, 1), "p95": round(_quantile(ages, 0.95) * 1000, 1)},
            "visual_tokens_per_packet": round(self.tokens_total / self.tokens_events, 1) if self.tokens_events else 0.0,
            "visual_tokens_note": self.tokens_note,
            "histograms": {"latency_seconds": self.latency_hist.view(), "event_age_seconds": self.age_hist.view()},
            **self.extra,
        }
