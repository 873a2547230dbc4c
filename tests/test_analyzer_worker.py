"""The analyzer worker on a real Redis: freshness, fairness, staleness, batching, caps,
renewals, unparsed/error events and metrics (backends are real: cpu, openai against the
test server, minicpm on the official MiniCPM-V 4.5 code with tiny random weights)."""

from __future__ import annotations

import asyncio
import json
import logging
import time

from prometheus_client import REGISTRY

from analyzer.backends.cpu import CpuBackend
from analyzer.backends.minicpm import MiniCPMBackend
from analyzer.backends.openai import OpenAIBackend
from analyzer.service import AnalyzerService
from analyzer.settings import AnalyzerSettings, CpuBackendSettings, MiniCPMSettings, OpenAISettings
from bus.messages import Camera, Event, PromptRule
from bus.registry import Registry
from tests.analyzer_helpers import make_packet, synthetic
from tests.fake_openai import FakeOpenAI


async def _publish(bus, packets):
    for p in packets:
        await bus.publish(bus.keys.packets, p)


async def _events(bus) -> list[Event]:
    return [e for _, e in await bus.range(bus.keys.events, Event)]


async def _run_until(services, cond, timeout=20.0):
    stop = asyncio.Event()
    tasks = [asyncio.create_task(s.run(stop)) for s in services]
    try:
        deadline = time.monotonic() + timeout
        while not await cond():
            assert time.monotonic() < deadline, "condition not reached in time"
            for t in tasks:
                if t.done():
                    t.result()
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*tasks)


def _openai(server: FakeOpenAI, **kw) -> OpenAIBackend:
    return OpenAIBackend(OpenAISettings(**{"base_url": server.base_url, "backoff_s": 0.01, "max_backoff_s": 0.02, **kw}))


async def test_newest_first_and_cameras_take_turns(bus):
    now = time.time()
    burst = [make_packet(synthetic(2, 160, 90), camera="busy", pid=f"busy-{i}", wall=now - 10 + i) for i in range(10)]
    quiet = [make_packet(synthetic(2, 160, 90), camera="quiet", pid=f"quiet-{i}", wall=now - 5 + i) for i in range(2)]
    await _publish(bus, burst + quiet)  # the burst is ahead of the quiet camera in the stream
    svc = AnalyzerService(bus, AnalyzerSettings(), CpuBackend(CpuBackendSettings(), concurrency=1), consumer="w1")

    async def all_done():
        return len(await _events(bus)) == 12

    await _run_until([svc], all_done)
    order = [e.packet_id for e in await _events(bus)]
    assert order[:4] == ["busy-9", "quiet-1", "busy-8", "quiet-0"]  # newest first, turns across cameras
    assert [x for x in order if x.startswith("busy")] == [f"busy-{i}" for i in range(9, -1, -1)]
    assert (await bus.group_info(bus.keys.packets, bus.keys.ANALYZERS))["pending"] == 0


async def test_oldest_first_for_replays(bus):
    now = time.time()
    await _publish(bus, [make_packet(synthetic(1, 160, 90), pid=f"p-{i}", wall=now - 5 + i) for i in range(4)])
    svc = AnalyzerService(bus, AnalyzerSettings(newest_first=False), CpuBackend(CpuBackendSettings(), concurrency=1))

    async def done():
        return len(await _events(bus)) == 4

    await _run_until([svc], done)
    assert [e.packet_id for e in await _events(bus)] == ["p-0", "p-1", "p-2", "p-3"]


async def test_stale_packets_are_skipped_counted_and_logged(bus, caplog):
    caplog.set_level(logging.WARNING, "vigil.analyzer")
    old = make_packet(synthetic(2, 160, 90), pid="old-1", wall=time.time() - 120)
    fresh = make_packet(synthetic(2, 160, 90), pid="fresh-1")
    await _publish(bus, [old, fresh])
    svc = AnalyzerService(bus, AnalyzerSettings(stale_after_s=30), CpuBackend(CpuBackendSettings()))

    async def done():
        return len(await _events(bus)) == 1 and svc.skipped_stale == 1

    await _run_until([svc], done)
    assert [e.packet_id for e in await _events(bus)] == ["fresh-1"]
    assert (await bus.group_info(bus.keys.packets, bus.keys.ANALYZERS))["pending"] == 0  # acked, not lost in limbo
    assert "packet old-1 skipped: 12" in caplog.text and "stale_after_s=30" in caplog.text
    assert REGISTRY.get_sample_value("vigil_analyzer_skipped_stale_total", {"backend": "cpu"}) >= 1


async def test_cameras_batched_into_one_minicpm_call(bus, tiny_minicpm, tiny_loaded):
    settings = MiniCPMSettings(model_id=str(tiny_minicpm.path), device="cpu", dtype="float32", max_batch=4,
                               max_new_tokens=16)
    backend = MiniCPMBackend(settings, loaded=tiny_loaded)
    reg = Registry(bus)
    await reg.put_camera(Camera(id="dock", url="testsrc://", context="a loading dock; trucks are normal at night"))
    await reg.put_rule(PromptRule(id="truck", prompt="a truck backs up to the dock", cameras=["dock"]))
    await _publish(bus, [make_packet(synthetic(3), camera=c, pid=f"{c}-1") for c in ("dock", "gate", "yard")])
    svc = AnalyzerService(bus, AnalyzerSettings(), backend)

    async def done():
        return len(await _events(bus)) == 3

    await _run_until([svc], done, timeout=120)
    snap = svc.metrics.snapshot("w")
    assert snap["calls"] == 1 and snap["mean_batch"] == 3.0  # one chat() for the three cameras
    events = {e.camera: e for e in await _events(bus)}
    prompts = {c: json.loads(await bus.r.get(bus.keys.event_prompt(e.id)))["prompt"] for c, e in events.items()}
    assert "trucks are normal at night" in prompts["dock"] and "a truck backs up" in prompts["dock"]
    assert "a truck backs up" not in prompts["gate"]  # rules apply to their cameras only
    assert events["dock"].rules[0].rule == "truck" and events["gate"].rules == []
    # Random weights answer noise: unparsed, never a match; every packet measured as seen.
    assert events["dock"].rules[0].match is False and {e.status for e in events.values()} == {"unparsed"}
    assert all(e.visual_tokens == 64 and e.backend == "minicpm" for e in events.values())
    assert snap["packets_seen"] == 3 and snap["packets_blind"] == 0
    assert REGISTRY.get_sample_value("vigil_analyzer_packets_seen_total", {"backend": "minicpm"}) >= 3


async def test_concurrency_limit_and_metrics_snapshot(bus):
    with FakeOpenAI(delay_s=0.15) as server:
        server.script.extend(["ok", "text:no json here, sorry", "400"])
        backend = _openai(server, concurrency=2)
        svc = AnalyzerService(bus, AnalyzerSettings(metrics_interval_s=0.2), backend, consumer="w-metrics")
        await _publish(bus, [make_packet(synthetic(6), camera=f"c{i}", pid=f"c{i}-1") for i in range(6)])

        async def done():
            return len(await _events(bus)) == 6

        await _run_until([svc], done)
        assert server.max_active == 2
    events = {e.packet_id: e for e in await _events(bus)}
    statuses = sorted(e.status for e in events.values())
    assert statuses == ["error", "ok", "ok", "ok", "ok", "unparsed"]
    unparsed = next(e for e in events.values() if e.status == "unparsed")
    assert unparsed.raw == "no json here, sorry"  # the raw answer is kept
    error = next(e for e in events.values() if e.status == "error")
    assert "HTTP 400" in error.raw
    raw = await bus.r.get(bus.keys.analyzer_metrics("w-metrics"))
    snap = json.loads(raw)
    assert snap["backend"] == "openai" and snap["events"] == 6 and snap["failures"] == 1 and snap["unparsed"] == 1
    assert snap["visual_tokens_per_packet"] == 384.0 and "64 visual tokens per frame" in snap["visual_tokens_note"]
    assert snap["latency_ms"]["p50"] >= 150 and snap["latency_ms"]["p95"] >= snap["latency_ms"]["p50"]
    assert snap["in_flight"] == 0 and snap["queue_depth"] == 0 and snap["circuit"] == "closed"
    assert snap["group_lag"] == 0 and snap["group_pending"] == 0 and snap["group_oldest_wait_s"] == 0.0
    assert REGISTRY.get_sample_value("vigil_analyzer_events_total", {"backend": "openai", "status": "unparsed"}) >= 1
    assert await bus.r.ttl(bus.keys.analyzer_metrics("w-metrics")) > 0


async def test_open_circuit_holds_packets_instead_of_failing_them(bus):
    with FakeOpenAI() as server:
        server.script.extend(["500", "500"])
        backend = _openai(server, concurrency=1, max_retries=1, breaker_failures=2, breaker_reset_s=0.5)
        svc = AnalyzerService(bus, AnalyzerSettings(), backend)
        await _publish(bus, [make_packet(synthetic(1), camera=f"c{i}", pid=f"c{i}-1") for i in range(3)])

        async def done():
            return len(await _events(bus)) == 3

        await _run_until([svc], done)
    events = await _events(bus)
    assert sorted(e.status for e in events) == ["error", "ok", "ok"]  # one failed call; the rest waited
    assert len(server.requests) == 4  # 2 failed tries, then the probe and one more: nothing hammered


async def test_slow_calls_are_renewed_not_reclaimed(bus):
    """A call longer than the visibility timeout stays with its worker (renewals); a second
    worker does not take it over, so the server sees one request."""
    with FakeOpenAI(delay_s=3.5) as server:
        s = AnalyzerSettings(visibility_timeout_s=1.2)
        w1 = AnalyzerService(bus, s, _openai(server, timeout_s=10), consumer="w1")
        w2 = AnalyzerService(bus, s, _openai(server, timeout_s=10), consumer="w2")
        await _publish(bus, [make_packet(synthetic(2), pid="slow-1")])

        async def done():
            return len(await _events(bus)) == 1

        await _run_until([w1, w2], done)
        assert len(server.requests) == 1
    assert w1.metrics.reclaimed + w2.metrics.reclaimed == 0


async def test_backlog_is_visible_in_metrics(bus):
    """Packets no worker has read yet show up as the group's oldest wait (Redis 6.2 has no lag)."""
    svc = AnalyzerService(bus, AnalyzerSettings(), CpuBackend(CpuBackendSettings()))
    await bus.ensure_group(bus.keys.packets, bus.keys.ANALYZERS)
    await _publish(bus, [make_packet(synthetic(1, 160, 90), pid="waiting-1")])
    await asyncio.sleep(0.3)
    lag, pending, oldest = await svc._group_counts()
    assert pending == 0 and oldest >= 0.25 and lag in (None, 1)


async def test_worker_does_not_spin_while_its_only_slot_is_busy(bus):
    """concurrency 1 and a long call: the worker blocks on the stream instead of polling Redis."""

    async def reads() -> int:
        return (await bus.r.info("commandstats")).get("cmdstat_xreadgroup", {}).get("calls", 0)

    with FakeOpenAI(delay_s=1.5) as server:
        await _publish(bus, [make_packet(synthetic(2), pid="long-1")])
        svc = AnalyzerService(bus, AnalyzerSettings(), _openai(server, concurrency=1))
        stop = asyncio.Event()
        task = asyncio.create_task(svc.run(stop))
        await asyncio.sleep(0.3)
        before = await reads()
        await asyncio.sleep(1.0)
        during = await reads() - before
        stop.set()
        await task
    assert svc.busy == 0 and len(await _events(bus)) == 1
    assert during <= 4, f"{during} XREADGROUP calls in 1 s while busy"


class _UnwritableCounts(CpuBackend):
    """A backend bug: an analysis holding a value the event cannot encode."""

    async def analyze(self, packets, rules, contexts):
        out = await super().analyze(packets, rules, contexts)
        for a in out:
            a.counts = {"person": object()}  # type: ignore[dict-item]
        return out


async def test_an_analysis_that_cannot_be_written_becomes_an_error_event_not_a_loop(bus):
    await _publish(bus, [make_packet(synthetic(2, 160, 90), camera="cam1", pid="poison-1", wall=time.time())])
    svc = AnalyzerService(bus, AnalyzerSettings(visibility_timeout_s=2), _UnwritableCounts(CpuBackendSettings(), concurrency=1),
                          consumer="w1")

    async def written():
        return len(await _events(bus)) >= 1

    await _run_until([svc], written)
    events = await _events(bus)
    assert [(e.packet_id, e.status) for e in events] == [("poison-1", "error")], events
    assert "Error" in events[0].raw, events[0].raw  # the reason is kept for the packet inspector
    info = await bus.group_info(bus.keys.packets, svc.group)
    assert info["pending"] == 0  # acked: never reclaimed and retried
