"""The openai backend against a real OpenAI-compatible HTTP server running in the test
(the boundary fake): wire format, fast mode, retries, breaker, caps, timeouts."""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import time

import pytest
from PIL import Image

from analyzer.backends.base import BackendError, BackendUnavailable
from analyzer.backends.circuit import CircuitBreaker
from analyzer.backends.openai import OpenAIBackend
from analyzer.settings import OpenAISettings, ThinkingSettings
from bus.messages import LabelRule, PromptRule
from tests.analyzer_helpers import make_packet, synthetic
from tests.fake_openai import FakeOpenAI


@pytest.fixture
def server():
    with FakeOpenAI() as s:
        yield s


def _backend(server: FakeOpenAI, **kw) -> OpenAIBackend:
    base = dict(base_url=server.base_url, model="minicpm-v-4.5", api_key_env="VIGIL_TEST_OPENAI_KEY",
                backoff_s=0.01, max_backoff_s=0.05, timeout_s=5)
    return OpenAIBackend(OpenAISettings(**{**base, **kw}), ThinkingSettings())


async def test_request_shape_and_answer(server, monkeypatch, caplog):
    monkeypatch.setenv("VIGIL_TEST_OPENAI_KEY", "sk-very-secret-123")
    caplog.set_level(logging.DEBUG)
    b = _backend(server)
    await b.start()
    p = make_packet(synthetic(6, 640, 360), camera="gate")  # at the model size, 602x336, as ingest sends it
    rules = {"gate": [PromptRule(id="loiter", prompt="someone waits at the gate"), LabelRule(id="p", label="person")]}
    [a] = await b.analyze([p], rules, {"gate": "the main gate"})
    await b.close()
    [seen] = server.requests
    body = seen.body
    assert seen.headers["authorization"] == "Bearer sk-very-secret-123"
    assert "sk-very-secret-123" not in caplog.text  # never logged
    assert body["model"] == "minicpm-v-4.5" and body["chat_template_kwargs"] == {"enable_thinking": False}
    system, user = body["messages"]
    assert system["role"] == "system" and "JSON" in system["content"]
    images = [part for part in user["content"] if part["type"] == "image_url"]
    assert len(images) == 6
    for part in images:
        head, b64 = part["image_url"]["url"].split(",", 1)
        assert head == "data:image/jpeg;base64"
        with Image.open(io.BytesIO(base64.b64decode(b64))) as im:
            assert im.size == (602, 336)  # sent as packed: what the model's processor uses
    assert "someone waits at the gate" in user["content"][-1]["text"] and "the main gate" in user["content"][-1]["text"]
    assert a.status == "ok" and a.summary == "fake model: 6 images"
    assert a.visual_tokens == 384  # no temporal packing over this API: 64 per frame
    by = {m.rule: m for m in a.rules}
    assert by["loiter"].match and by["loiter"].confidence == 0.9 and by["p"].match


async def test_oversized_frames_are_shrunk_to_the_model_size(server):
    b = _backend(server)
    big = make_packet(synthetic(2, 448, 252))
    # A packet with frames above the contract (an older scheduler, a bigger ingest.model_size):
    # sent at the model processor's size for openai.model_size.
    from tests.analyzer_helpers import jpeg
    import numpy as np

    frame = np.full((720, 1280, 3), 120, np.uint8)
    for f in big.frames:
        f.jpeg = jpeg(frame)
    big.width, big.height = 1280, 720
    await b.analyze([big])
    await b.close()
    url = server.requests[0].body["messages"][1]["content"][0]["image_url"]["url"]
    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as im:
        assert im.size == (602, 336)


async def test_429_and_500_are_retried(server):
    server.script.extend(["429", "500"])
    b = _backend(server, max_retries=2)
    [a] = await b.analyze([make_packet(synthetic(2))])
    await b.close()
    assert a.status == "ok" and len(server.requests) == 3 and b.retries == 2


async def test_retries_are_bounded(server):
    server.script.extend(["500"] * 10)
    b = _backend(server, max_retries=2, breaker_failures=100)
    with pytest.raises(BackendError, match="3 tries: HTTP 500"):
        await b.analyze([make_packet(synthetic(2))])
    await b.close()
    assert len(server.requests) == 3


async def test_client_errors_are_not_retried(server):
    server.script.append("400")
    b = _backend(server, max_retries=3)
    with pytest.raises(BackendError, match="HTTP 400"):
        await b.analyze([make_packet(synthetic(2))])
    await b.close()
    assert len(server.requests) == 1 and b.breaker.state == "closed"


async def test_malformed_bodies_are_retried_then_fail(server):
    server.script.extend(["notjson", "malformed", "malformed"])
    b = _backend(server, max_retries=2, breaker_failures=100)
    with pytest.raises(BackendError, match="malformed response"):
        await b.analyze([make_packet(synthetic(2))])
    server.script.extend(["notjson"])
    [a] = await b.analyze([make_packet(synthetic(2))])  # one bad body, then a good one
    await b.close()
    assert a.status == "ok"


async def test_chatty_or_broken_content_is_parsed_or_kept(server):
    server.script.extend(['text:<think>hmm</think>Here you go:\n```json\n{"summary": "a van parks", "objects": ["van"]}\n```',
                          "text:I am unable to see images."])
    b = _backend(server)
    a1 = (await b.analyze([make_packet(synthetic(2))]))[0]
    a2 = (await b.analyze([make_packet(synthetic(2))]))[0]
    await b.close()
    assert a1.status == "ok" and a1.summary == "a van parks" and a1.labels[0] == "van"
    assert a2.status == "unparsed" and a2.raw == "I am unable to see images."


async def test_slow_server_times_out(server):
    server.delay_s = 2.0
    b = _backend(server, timeout_s=0.3, max_retries=1, breaker_failures=100)
    t0 = time.monotonic()
    with pytest.raises(BackendError, match="timeout"):
        await b.analyze([make_packet(synthetic(2))])
    await b.close()
    assert time.monotonic() - t0 < 1.8 and len(server.requests) == 2


async def test_concurrency_cap_per_server(server):
    server.delay_s = 0.2
    b = _backend(server, concurrency=3)
    packets = [make_packet(synthetic(1), camera=f"c{i}") for i in range(9)]
    t0 = time.monotonic()
    out = await asyncio.gather(*(b.analyze([p]) for p in packets))
    await b.close()
    assert all(o[0].status == "ok" for o in out)
    assert server.max_active == 3 and time.monotonic() - t0 >= 0.55


async def test_circuit_breaker_opens_and_recovers(server):
    server.script.extend(["500"] * 3)
    b = _backend(server, max_retries=0, breaker_failures=3, breaker_reset_s=0.3)
    for _ in range(3):
        with pytest.raises(BackendError):
            await b.analyze([make_packet(synthetic(1))])
    assert b.breaker.state == "open" and not b.available()
    with pytest.raises(BackendUnavailable):  # refused without a request
        await b.analyze([make_packet(synthetic(1))])
    assert len(server.requests) == 3
    await asyncio.sleep(0.35)
    assert b.available()  # half-open: one probe goes through
    [a] = await b.analyze([make_packet(synthetic(1))])
    await b.close()
    assert a.status == "ok" and b.breaker.state == "closed" and len(server.requests) == 4


async def test_thinking_escalation_over_http(server):
    answers = iter([
        '{"summary": "s", "rules": [{"rule": "fall", "match": true, "confidence": 0.3, "evidence": "maybe"}]}',
        '<think>long</think>{"summary": "s", "rules": [{"rule": "fall", "match": false, "confidence": 0.8, "evidence": "sitting"}]}',
    ])
    server.answer = lambda body: next(answers)
    b = _backend(server)
    [a] = await b.analyze([make_packet(synthetic(2), camera="c")],
                          {"c": [PromptRule(id="fall", prompt="a person falls", think=True)]})
    await b.close()
    kw = [r.body["chat_template_kwargs"]["enable_thinking"] for r in server.requests]
    assert kw == [False, True] and server.requests[1].body["max_tokens"] == 2048
    assert a.rules[0].match is False and "fast answer: match=true" in a.rules[0].evidence


def test_breaker_unit():
    now = [0.0]
    br = CircuitBreaker(2, 10, clock=lambda: now[0])
    br.failure()
    assert br.state == "closed"
    br.failure()
    assert br.state == "open" and not br.allow()
    now[0] = 10.0
    assert br.allow() and not br.allow()  # one probe only
    br.failure()
    assert br.state == "open" and br.opened_count == 2
    now[0] = 20.0
    assert br.allow()
    br.success()
    assert br.state == "closed" and br.allow()
