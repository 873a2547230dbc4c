"""Fleet-wide counters and histograms in Redis, so one /metrics (any web process) shows every
stage, however many processes run it.

A stage process adds to its `StageMetrics` in memory (no I/O per observation) and flushes
the increments every second or so with one pipelined HINCRBYFLOAT per touched series; several
processes of one stage add up. The web stage renders them (`read_series`) in Prometheus' text
format with the names, types, help texts and buckets declared here: one table, so a name is
spelt once and the Grafana dashboard (deploy/grafana/vigil.json) can rely on it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

from bus.connection import Bus

log = logging.getLogger("vigil.bus")


@dataclass(frozen=True)
class Spec:
    kind: str  # "counter" | "histogram"
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()


LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
DELAY_BUCKETS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 60.0)

# Names follow Prometheus' conventions: base units in the name, `_total` on counters.
SPECS: dict[str, Spec] = {
    "vigil_alerts_changes_total": Spec("counter", "alert changes written (open, update, resolved; notify: a "
                                       "notification, or evidence folded in silently)",
                                       ("rule", "state", "severity", "notify")),
    "vigil_alerts_open_delay_seconds": Spec(
        "histogram", "first evidence captured -> alert opened (fast: from motion onset; else via the model)",
        ("fast",), DELAY_BUCKETS),
    "vigil_webhook_deliveries_total": Spec("counter", "webhook attempts by outcome (delivered, retry, dead)",
                                           ("endpoint", "outcome")),
    "vigil_webhook_request_duration_seconds": Spec("histogram", "one webhook POST, connect to response",
                                                   ("endpoint",), LATENCY_BUCKETS),
}


def _series(name: str, labels: dict[str, str]) -> str:
    spec = SPECS[name]
    return name + "|" + "|".join(str(labels.get(k, "")) for k in spec.labels)


class StageMetrics:
    """In-memory increments of one process, flushed to Redis (see the module doc)."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._counts: dict[str, float] = defaultdict(float)
        self._hist: dict[str, float] = defaultdict(float)

    def inc(self, name: str, n: float = 1.0, **labels: str) -> None:
        self._counts[_series(name, labels)] += n

    def observe(self, name: str, value: float, **labels: str) -> None:
        spec = SPECS[name]
        base = _series(name, labels)
        for le in spec.buckets:
            if value <= le:
                self._hist[f"{base}|{le}"] += 1  # cumulative buckets, as Prometheus wants them
        self._hist[f"{base}|+Inf"] += 1
        self._hist[f"{base}|sum"] += value

    async def flush(self) -> None:
        if not self._counts and not self._hist:
            return
        counts, hist = self._counts, self._hist
        self._counts, self._hist = defaultdict(float), defaultdict(float)
        pipe = self.bus.r.pipeline(transaction=False)
        for field, n in counts.items():
            pipe.hincrbyfloat(self.bus.keys.metrics_counters, field, n)
        for field, n in hist.items():
            pipe.hincrbyfloat(self.bus.keys.metrics_histograms, field, n)
        try:
            await pipe.execute()
        except Exception as exc:  # Redis away: keep the increments for the next flush
            log.debug("metrics not flushed: %s", exc)
            for field, n in counts.items():
                self._counts[field] += n
            for field, n in hist.items():
                self._hist[field] += n


@dataclass
class Series:
    name: str
    spec: Spec
    labels: dict[str, str]
    value: float = 0.0  # counters
    buckets: dict[str, float] | None = None  # histograms: le -> cumulative count
    sum: float = 0.0


async def read_series(bus: Bus) -> list[Series]:
    """Every stored counter and histogram series, for the /metrics exposition."""
    out: dict[str, Series] = {}
    for key, is_hist in ((bus.keys.metrics_counters, False), (bus.keys.metrics_histograms, True)):
        for raw_field, raw_value in (await bus.r.hgetall(key)).items():
            parts = raw_field.decode().split("|")
            spec = SPECS.get(parts[0])
            if spec is None or (spec.kind == "histogram") != is_hist:
                continue  # a name a newer or older version wrote: not ours to show
            n_labels = len(spec.labels)
            labels = dict(zip(spec.labels, parts[1:1 + n_labels]))
            base = "|".join(parts[:1 + n_labels])
            s = out.setdefault(base, Series(parts[0], spec, labels, buckets={} if is_hist else None))
            value = float(raw_value)
            if not is_hist:
                s.value = value
                continue
            which = parts[1 + n_labels] if len(parts) > 1 + n_labels else ""
            if which == "sum":
                s.sum = value
            elif s.buckets is not None:
                s.buckets[which] = value
    return list(out.values())
