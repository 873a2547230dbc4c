"""Operations: /readyz (Redis and stages) and /metrics (Prometheus text format)."""

import asyncio
import time
from typing import Annotated

import msgspec
from fastapi import APIRouter, Depends, Response
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from bus.connection import Bus
from bus.registry import Registry
from web.auth import Principal
from web.body import json_response
from web.deps import Access

STAGES = ("ingest", "scheduler", "analyzer", "alerts")


async def stage_workers(bus: Bus) -> dict[str, list[dict]]:
    """Live workers per stage, from the heartbeats every stage process writes (with a TTL)."""
    out: dict[str, list[dict]] = {}
    async for key in bus.r.scan_iter(match=f"{bus.keys.prefix}stage:*", count=200):
        _, stage, worker = key.decode().removeprefix(bus.keys.prefix).split(":", 2)
        raw = await bus.r.get(key)
        info = msgspec.json.decode(raw) if raw else {}
        out.setdefault(stage, []).append({"worker": worker, **info})
    return out


async def queue_stats(bus: Bus) -> dict[str, dict]:
    out = {}
    for name, stream, group in (("packets", bus.keys.packets, bus.keys.ANALYZERS),
                                ("events", bus.keys.events, bus.keys.ALERTERS)):
        info = await bus.group_info(stream, group) or {}
        length = await bus.r.xlen(stream)
        out[name] = {"length": length, "pending": int(info.get("pending", 0)),
                     "consumers": int(info.get("consumers", 0)), "last_delivered": info.get("last-delivered-id")}
        last = await bus.r.xrevrange(stream, count=1)
        delivered = info.get("last-delivered-id")
        out[name]["caught_up"] = not last or delivered == last[0][0].decode()
    return out


def _flatten(snap: dict, prefix: str = "") -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    for k, v in snap.items():
        if isinstance(v, bool) or k in ("v", "at"):
            continue
        if isinstance(v, (int, float)):
            out.append((prefix + k, float(v)))
        elif isinstance(v, dict):
            out += _flatten(v, f"{prefix}{k}_")
    return out


def ops_router(bus: Bus, access: Access) -> APIRouter:
    r = APIRouter(tags=["operations"])
    Viewer = Annotated[Principal, Depends(access.viewer)]
    registry = Registry(bus)

    @r.get("/readyz")
    async def readyz(who: Viewer) -> Response:
        """Ready when Redis answers and every stage has at least one live worker."""
        try:
            await asyncio.wait_for(bus.r.ping(), 2)
        except Exception:
            return json_response({"ready": False, "redis": False, "stages": {}}, 503)
        workers = await stage_workers(bus)
        stages = {s: len(workers.get(s, [])) for s in STAGES}
        ready = all(stages.values())
        return json_response({"ready": ready, "redis": True, "stages": stages}, 200 if ready else 503)

    @r.get("/api/system")
    async def system(who: Viewer) -> Response:
        return json_response({"stages": await stage_workers(bus), "queues": await queue_stats(bus), "time": time.time()})

    @r.get("/metrics")
    async def metrics(who: Viewer) -> Response:
        families: list = []
        cam = {n: GaugeMetricFamily(f"vigil_camera_{n}", h, labels=["camera"]) for n, h in (
            ("frames_decoded", "frames decoded since the camera's source opened"),
            ("frames_sampled", "frames sampled (converted, sent for scoring)"),
            ("frames_dropped", "sampled frames dropped before Redis (live backlog)"),
            ("last_frame_age_seconds", "seconds since the last frame was written"),
            ("streaming", "1 while the camera streams"),
        )}
        for cam_id in await registry.cameras():
            raw = await bus.r.get(bus.keys.camera_status(cam_id))
            st = msgspec.json.decode(raw) if raw else {}
            cam["frames_decoded"].add_metric([cam_id], st.get("decoded", 0))
            cam["frames_sampled"].add_metric([cam_id], st.get("sampled", 0))
            cam["frames_dropped"].add_metric([cam_id], st.get("dropped", 0))
            cam["last_frame_age_seconds"].add_metric([cam_id], st.get("last_frame_age_s", -1))
            cam["streaming"].add_metric([cam_id], 1 if st.get("state") == "streaming" else 0)
        families += cam.values()
        q = GaugeMetricFamily("vigil_queue_length", "entries in a stream", labels=["queue"])
        p = GaugeMetricFamily("vigil_queue_pending", "delivered but not yet acked", labels=["queue"])
        for name, st in (await queue_stats(bus)).items():
            q.add_metric([name], st["length"])
            p.add_metric([name], st["pending"])
        w = GaugeMetricFamily("vigil_stage_workers", "live workers per stage", labels=["stage"])
        for stage, workers in (await stage_workers(bus)).items():
            w.add_metric([stage], len(workers))
        extra = await bus.r.hgetall(f"{bus.keys.prefix}metrics:gauges")
        g = GaugeMetricFamily("vigil_stage_gauge", "counters stages publish (see docs)", labels=["name"])
        for k, v in extra.items():
            try:
                g.add_metric([k.decode()], float(v))
            except ValueError:
                pass
        families += [q, p, w, g]
        # Analyzer workers anywhere publish a snapshot (analyzer/metrics.py); one gauge per number.
        a = GaugeMetricFamily("vigil_analyzer_worker", "analyzer worker snapshot values", labels=["worker", "backend", "name"])
        async for key in bus.r.scan_iter(match=bus.keys.analyzer_metrics_pattern, count=200):
            raw = await bus.r.get(key)
            snap = msgspec.json.decode(raw) if raw else {}
            for name, value in _flatten(snap):
                a.add_metric([str(snap.get("worker", "?")), str(snap.get("backend", "?")), name], value)
        families.append(a)

        class _Snapshot:
            def collect(self):  # noqa: ANN202 - prometheus collector protocol
                return families

        reg = CollectorRegistry()
        reg.register(_Snapshot())
        # Stages in this same process (vigil serve) also expose their live Prometheus series.
        return Response(generate_latest(reg) + generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return r
