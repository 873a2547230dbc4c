"""The /metrics families: Prometheus names, types and units (docs/web.md lists them).

Everything comes from Redis, so any web process shows the whole fleet: ingest's camera
status (its counters become `_total` counters), queue depths, stage heartbeats, the
scheduler's counters hash, every analyzer worker's snapshot (gauges, counters and its
histograms), and the counters and histograms stages add through bus/metrics.py. Only the
`vigil_web_*` gauges are this process's own.
"""

from __future__ import annotations

import math

import msgspec
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from bus.connection import Bus
from bus.metrics import read_series
from bus.registry import Registry

CAMERA_COUNTERS = (  # status field -> metric, help
    ("decoded", "vigil_camera_frames_decoded", "frames decoded since the camera's source opened"),
    ("sampled", "vigil_camera_frames_sampled", "frames sampled (converted, sent for scoring)"),
    ("written", "vigil_camera_frames_written", "sampled frames written to the frames stream"),
    ("dropped", "vigil_camera_frames_dropped", "sampled frames dropped before Redis (live backlog)"),
    ("reconnects", "vigil_camera_reconnects", "reconnect attempts, failed opens included"),
    ("outages", "vigil_camera_outages", "times a streaming connection was lost"),
)
ANALYZER_GAUGES = (  # snapshot field -> metric, help
    ("queue_depth", "vigil_analyzer_queue_depth_packets", "packets read ahead and waiting in the worker"),
    ("in_flight", "vigil_analyzer_in_flight_packets", "packets inside backend calls now"),
    ("group_lag", "vigil_analyzer_group_lag_packets", "packets no worker has read yet"),
    ("group_pending", "vigil_analyzer_group_pending_packets", "packets read but not yet acknowledged"),
    ("group_oldest_wait_s", "vigil_analyzer_group_oldest_wait_seconds", "age of the oldest packet no worker has read"),
    ("visual_tokens_per_packet", "vigil_analyzer_visual_tokens_per_packet", "mean visual tokens one packet costs"),
    ("uptime_s", "vigil_analyzer_uptime_seconds", "seconds since the worker started"),
)
ANALYZER_COUNTERS = (
    ("events", "vigil_analyzer_events", "events written"),
    ("unparsed", "vigil_analyzer_unparsed_events", "events whose model answer could not be parsed"),
    ("failures", "vigil_analyzer_failures", "packets whose backend call failed (error events)"),
    ("skipped_stale", "vigil_analyzer_skipped_stale_packets", "packets skipped as older than stale_after_s"),
    ("reclaimed", "vigil_analyzer_reclaimed_packets", "packets taken over from a dead worker (XAUTOCLAIM)"),
    ("thinking_escalations", "vigil_analyzer_thinking_escalations", "rules re-asked with thinking"),
    ("packets_seen", "vigil_analyzer_packets_seen", "packets measured to reach the model with all frames"),
    ("packets_blind", "vigil_analyzer_packets_blind", "packets answered without all frames (error events)"),
    ("calls", "vigil_analyzer_backend_calls", "backend calls (each carries one or more packets)"),
)
ANALYZER_HISTOGRAMS = (
    ("latency_seconds", "vigil_analyzer_latency_seconds", "backend call latency per packet"),
    ("event_age_seconds", "vigil_analyzer_event_age_seconds", "capture of the last frame to event written"),
)
SCHEDULER_COUNTERS = (  # stats hash field (or prefix) -> metric, label, help
    ("frames", "vigil_scheduler_frames_scored", None, "sampled frames scored for motion"),
    ("packets:", "vigil_scheduler_packets", "camera", "packets sent to the analyzers"),
    ("packets_", "vigil_scheduler_packets_by_reason", "reason", "packets sent, by reason (onset, motion, heartbeat)"),
    ("stale_dropped:", "vigil_scheduler_stale_dropped_packets", "camera", "live packets dropped as older than max_age_s"),
    ("recalibrations", "vigil_scheduler_recalibrations", None, "global changes (lights, IR) that reset the background"),
    ("bad_frames", "vigil_scheduler_bad_frames", None, "frame entries that could not be used"),
)


def _num(v: object) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def _histogram(name: str, help_text: str, labels: list[str]) -> HistogramMetricFamily:
    return HistogramMetricFamily(name, help_text, labels=labels)


def _buckets(le: list, counts: list) -> list[tuple[str, float]]:
    return [(repr(float(b)), float(c)) for b, c in zip(le, counts)]


async def analyzer_snapshots(bus: Bus) -> list[dict]:
    """The metrics snapshot every analyzer worker publishes (analyzer/metrics.py), any host."""
    out = []
    async for key in bus.r.scan_iter(match=bus.keys.analyzer_metrics_pattern, count=200):
        raw = await bus.r.get(key)
        try:
            snap = msgspec.json.decode(raw) if raw else None
        except msgspec.DecodeError:
            continue
        if isinstance(snap, dict):
            out.append(snap)
    return sorted(out, key=lambda s: str(s.get("worker", "")))


async def collect_families(bus: Bus, registry: Registry, workers: dict[str, list], queues: dict[str, dict],
                           local: dict[str, float]) -> list:
    fams: list = []
    # -- ingest: per-camera status --------------------------------------------------------
    cams = {field: CounterMetricFamily(name, h, labels=["camera"]) for field, name, h in CAMERA_COUNTERS}
    age = GaugeMetricFamily("vigil_camera_last_frame_age_seconds", "seconds since the last frame was written (-1: none)",
                            labels=["camera"])
    up = GaugeMetricFamily("vigil_camera_streaming", "1 while the camera streams", labels=["camera"])
    for cam_id in sorted(await registry.cameras()):
        raw = await bus.r.get(bus.keys.camera_status(cam_id))
        st = msgspec.json.decode(raw) if raw else {}
        for field, fam in cams.items():
            fam.add_metric([cam_id], float(st.get(field, 0) or 0))
        age.add_metric([cam_id], float(st.get("last_frame_age_s", -1)))
        up.add_metric([cam_id], 1.0 if st.get("state") == "streaming" else 0.0)
    fams += [*cams.values(), age, up]

    # -- queues and workers ---------------------------------------------------------------
    length = GaugeMetricFamily("vigil_queue_entries", "entries in a stream", labels=["queue"])
    pending = GaugeMetricFamily("vigil_queue_pending_entries", "delivered to a consumer, not yet acknowledged",
                                labels=["queue"])
    consumers = GaugeMetricFamily("vigil_queue_consumers", "consumers in the stream's group", labels=["queue"])
    for name, q in queues.items():
        length.add_metric([name], q["length"])
        pending.add_metric([name], q["pending"])
        consumers.add_metric([name], q["consumers"])
    w = GaugeMetricFamily("vigil_stage_workers", "live workers per stage (heartbeats)", labels=["stage"])
    for stage in ("ingest", "scheduler", "analyzer", "alerts", "web", *sorted(set(workers) - {
            "ingest", "scheduler", "analyzer", "alerts", "web"})):
        w.add_metric([stage], len(workers.get(stage, [])))
    fams += [length, pending, consumers, w]

    # -- scheduler: its counters hash -----------------------------------------------------
    stats = {k.decode(): float(v) for k, v in (await bus.r.hgetall(bus.keys.scheduler_stats)).items()}
    for key, name, label, h in SCHEDULER_COUNTERS:
        fam = CounterMetricFamily(name, h, labels=[label] if label else [])
        if label is None:
            fam.add_metric([], stats.get(key, 0.0))
        else:
            for field, v in sorted(stats.items()):
                if field.startswith(key) and ":" not in field[len(key):]:
                    fam.add_metric([field[len(key):]], v)
        fams.append(fam)

    # -- analyzer workers: their snapshots ------------------------------------------------
    labels = ["worker", "backend"]
    ag = {f: GaugeMetricFamily(n, h, labels=labels) for f, n, h in ANALYZER_GAUGES}
    ac = {f: CounterMetricFamily(n, h, labels=labels) for f, n, h in ANALYZER_COUNTERS}
    ah = {f: _histogram(n, h, labels) for f, n, h in ANALYZER_HISTOGRAMS}
    for snap in await analyzer_snapshots(bus):
        lv = [str(snap.get("worker", "?")), str(snap.get("backend", "?"))]
        for field, fam in ag.items():
            if (v := _num(snap.get(field))) is not None:
                fam.add_metric(lv, v)
        for field, fam in ac.items():
            if (v := _num(snap.get(field))) is not None:
                fam.add_metric(lv, v)
        for field, fam in ah.items():
            h = (snap.get("histograms") or {}).get(field)
            if isinstance(h, dict) and h.get("le"):
                fam.add_metric(lv, _buckets(h["le"], h["counts"]) + [("+Inf", float(h["count"]))], float(h["sum"]))
    fams += [*ag.values(), *ac.values(), *ah.values()]

    # -- alerts and webhooks: what stages add through bus/metrics.py ----------------------
    by_name: dict[str, object] = {}
    for s in await read_series(bus):
        names = list(s.spec.labels)
        if s.spec.kind == "counter":
            fam = by_name.setdefault(s.name, CounterMetricFamily(s.name.removesuffix("_total"), s.spec.help, labels=names))
            fam.add_metric([s.labels.get(k, "") for k in names], s.value)  # type: ignore[attr-defined]
        else:
            fam = by_name.setdefault(s.name, _histogram(s.name, s.spec.help, names))
            b = s.buckets or {}
            pts = [(repr(float(le)), b.get(str(le), 0.0)) for le in s.spec.buckets] + [("+Inf", b.get("+Inf", 0.0))]
            fam.add_metric([s.labels.get(k, "") for k in names], pts, s.sum)  # type: ignore[attr-defined]
    open_alerts = GaugeMetricFamily("vigil_alerts_open", "alerts open now")
    open_alerts.add_metric([], await bus.r.scard(bus.keys.open_alerts_index))
    due = GaugeMetricFamily("vigil_webhook_queued_deliveries", "webhook deliveries waiting to be sent")
    due.add_metric([], await bus.r.zcard(bus.keys.deliveries_due))
    dead = GaugeMetricFamily("vigil_webhook_dead_letters", "webhook deliveries that used up their retries")
    dead.add_metric([], await bus.r.llen(bus.keys.dead_letters))
    fams += [*by_name.values(), open_alerts, due, dead]

    # -- this web process -------------------------------------------------------------------
    for name, value in sorted(local.items()):
        g = GaugeMetricFamily(name, {"vigil_web_websocket_clients": "live websocket clients of this web process",
                                     "vigil_web_live_viewers": "live-view (MJPEG) streams served by this web process"}
                              .get(name, name))
        g.add_metric([], value)
        fams.append(g)
    return fams
