"""Caps on rules (probe finding 4): how many rules and natural-language rules there may be,
what one event keeps per rule, and an alerts stage whose work per event stays linear and
small (Redis commands per rule counted on a real Redis)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from alerts.settings import AlertsSettings
from analyzer.backends.base import Analysis
from analyzer.events import build_event
from bus.limits import MAX_EVIDENCE, MAX_PROMPT_RULES, MAX_RULE_RESULTS, MAX_RULES
from bus.messages import LabelRule, PromptRule, RuleMatch
from bus.registry import Registry
from tests.alerting import event, onset_packet, running, settled
from tests.conftest import run_cli

TOKEN = "caps-admin-token-" + "abcdefgh1234"
H = {"Authorization": f"Bearer {TOKEN}"}


async def test_the_api_caps_rules(bus, monkeypatch):
    from web.app import create_app
    from web.settings import WebSettings

    monkeypatch.setenv("VIGIL_TOKEN", TOKEN)
    app = create_app(bus, WebSettings())
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://vigil") as c:
            for i in range(MAX_PROMPT_RULES):
                res = await c.post("/api/rules", json={"id": f"p{i}", "prompt": f"someone at door {i}"}, headers=H)
                assert res.status_code == 201, res.text
            res = await c.post("/api/rules", json={"id": "p-extra", "prompt": "one too many"}, headers=H)
            assert res.status_code == 409 and "natural-language" in res.text
            res = await c.post("/api/rules", json={"id": "p0", "prompt": "x" * 501}, headers=H)
            assert res.status_code == 422  # prompt length
            assert (await c.put("/api/rules/p0", json={"id": "p0", "prompt": "replaced"}, headers=H)).status_code == 200
            for i in range(MAX_RULES - MAX_PROMPT_RULES):
                res = await c.post("/api/rules", json={"id": f"l{i}", "label": "person"}, headers=H)
                assert res.status_code == 201, res.text
            res = await c.post("/api/rules", json={"id": "l-extra", "label": "car"}, headers=H)
            assert res.status_code == 409 and str(MAX_RULES) in res.text
            res = await c.put("/api/rules/l-extra", json={"id": "l-extra", "label": "car"}, headers=H)
            assert res.status_code == 409
            assert len(await Registry(bus).rules()) == MAX_RULES


def test_the_config_caps_rules(tmp_path: Path):
    cfg = tmp_path / "vigil.yaml"
    cfg.write_text("rules:\n" + "".join(f"  - {{id: r{i}, label: person}}\n" for i in range(MAX_RULES + 1)))
    res = run_cli(["check-config", "-c", str(cfg)], timeout=60)
    assert res.returncode == 2 and f"at most {MAX_RULES} rules" in res.stderr, res.stderr


def test_an_event_keeps_a_bounded_number_of_rule_results():
    packet = onset_packet("cam", "cam-1-0", time.time())
    results = [RuleMatch(rule=f"r{i}", match=i % 50 == 0, confidence=0.5, evidence="e" * 5000) for i in range(1000)]
    ev = build_event(packet, Analysis(summary="s", labels=[], rules=results), backend="cpu", model="m", latency_ms=1)
    assert len(ev.rules) == MAX_RULE_RESULTS
    assert {r.rule for r in ev.rules if r.match} == {f"r{i}" for i in range(0, 1000, 50)}  # every match kept
    assert all(len(r.evidence) <= MAX_EVIDENCE for r in ev.rules)


async def _commands(bus) -> int:
    stats = await bus.r.info("commandstats")
    return sum(v["calls"] for v in stats.values())


async def test_alerts_work_per_event_is_linear_and_small(bus):
    """Every rule costs a bounded number of Redis commands per event, however many rules:
    1000 rules once put the stage minutes behind (each rule scanned every rule's result)."""
    reg = Registry(bus)
    per_rule = {}
    async with running(bus, AlertsSettings(tick_s=3600)):
        for n in (16, MAX_RULES):
            for i in range(n):
                await reg.put_rule(LabelRule(id=f"r{i}", label="person") if i % 2 else
                                   PromptRule(id=f"r{i}", prompt=f"a person near door {i}"))
            await settled(bus, bus.keys.events, bus.keys.ALERTERS)
            await _wait_rules(bus, n)
            verdicts = [RuleMatch(rule=f"r{i}", match=False, confidence=0.9, evidence="no") for i in range(0, n, 2)]
            t = time.time()
            before = await _commands(bus)
            for k in range(5):
                await bus.publish(bus.keys.events, event("cam", f"cam-{n}-{k}", t + k, t + k + 1, ["motion"],
                                                         verdicts=verdicts))
            await settled(bus, bus.keys.events, bus.keys.ALERTERS, timeout=60)
            per_rule[n] = (await _commands(bus) - before) / (5 * n)
    print(f"redis commands per rule per event: {per_rule}")
    assert per_rule[MAX_RULES] <= 8, per_rule  # lock, one read of alert+track, write, unlock (+ polling)
    assert per_rule[MAX_RULES] <= per_rule[16] * 1.5, per_rule  # linear: the cost per rule does not grow


async def _wait_rules(bus, n: int) -> None:
    import asyncio

    while len(await Registry(bus).rules()) < n:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # the stage reloads rules on every read of the events stream
