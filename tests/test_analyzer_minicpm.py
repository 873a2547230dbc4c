"""The minicpm backend's call contract (DESIGN §4), checked with a stand-in model object that
records what chat() was given; the real loading path is an opt-in GPU test."""

from __future__ import annotations

import json
import os
import sys
import threading

import pytest
from PIL import Image

from analyzer.backends import make_backend
from analyzer.backends.minicpm import MiniCPMBackend
from analyzer.settings import AnalyzerSettings, MiniCPMSettings, ThinkingSettings
from bus.messages import LabelRule, PromptRule
from tests.analyzer_helpers import make_packet, read_frames, synthetic


class StandInModel:
    """Records every chat() call; answers with canned JSON (one per conversation)."""

    def __init__(self, answers: list[str] | None = None) -> None:
        self.calls: list[dict] = []
        self.threads: list[str] = []
        self.answers = answers

    def chat(self, **kw):
        self.threads.append(threading.current_thread().name)
        batched = isinstance(kw["msgs"][0], list)
        convs = kw["msgs"] if batched else [kw["msgs"]]
        record = dict(kw)
        record["images"] = [[(type(x).__name__, getattr(x, "size", None), getattr(x, "mode", None))
                             for x in c[0]["content"] if isinstance(x, Image.Image)] for c in convs]
        self.calls.append(record)
        out = []
        for c in convs:
            if self.answers:
                out.append(self.answers.pop(0))
                continue
            n = sum(isinstance(x, Image.Image) for x in c[0]["content"])
            out.append(json.dumps({"summary": f"stand-in saw {n} frames", "objects": [{"label": "person", "count": 1}],
                                   "activities": [], "rules": []}))
        return out if batched else out[0]


TOKENIZER = object()


def _backend(model: StandInModel, **kw) -> MiniCPMBackend:
    return MiniCPMBackend(MiniCPMSettings(**kw), ThinkingSettings(), model=model, tokenizer=TOKENIZER)


@pytest.fixture(scope="module")
def vtest_packet(media):
    frames = read_frames(media / "vtest.avi", [100, 104, 108, 112, 116, 120])
    return make_packet(frames, camera="campus", ts=[10.0, 10.4, 10.8, 11.2, 11.6, 12.0])


async def test_exact_chat_call_for_one_packet(vtest_packet):
    model = StandInModel()
    b = _backend(model)
    await b.start()
    rules = {"campus": [PromptRule(id="group", prompt="three or more people walk together")]}
    [a] = await b.analyze([vtest_packet], rules, {"campus": "a university path"})
    await b.close()
    [call] = model.calls
    assert call["tokenizer"] is TOKENIZER
    assert call["use_image_id"] is False and call["max_slice_nums"] == 1 and call["enable_thinking"] is False
    assert call["temporal_ids"] == vtest_packet.temporal_ids == [[0, 4, 8, 12, 16, 20]]
    msgs = call["msgs"]
    assert isinstance(msgs, list) and len(msgs) == 1 and msgs[0]["role"] == "user"
    content = msgs[0]["content"]
    assert len(content) == 7 and isinstance(content[-1], str)  # six PIL frames, then the question
    assert call["images"] == [[("Image", (448, 336), "RGB")] * 6]
    assert "three or more people walk together" in content[-1] and "a university path" in content[-1]
    assert "JSON" in call["system_prompt"] and "system" not in [m["role"] for m in msgs]
    assert model.threads == ["minicpm_0"]  # generation ran off the event loop, in its own thread
    assert a.status == "ok" and a.summary == "stand-in saw 6 frames" and a.visual_tokens == 64
    assert a.rules[0].rule == "group" and a.rules[0].match is False  # no verdict given -> not matched


async def test_cameras_are_batched_into_one_call(vtest_packet):
    model = StandInModel()
    b = _backend(model, max_batch=4)
    other = make_packet(synthetic(4, 448, 252), camera="gate", ts=[0.0, 0.33, 0.5, 4.3])
    third = make_packet(synthetic(2, 320, 448), camera="dock", ts=[7.0, 7.25])
    out = await b.analyze([vtest_packet, other, third], {}, {})
    [call] = model.calls
    assert len(call["msgs"]) == 3 and all(isinstance(c, list) and len(c) == 1 for c in call["msgs"])
    # temporal_ids one level deeper: one list of groups per conversation, matching its frames.
    assert call["temporal_ids"] == [vtest_packet.temporal_ids, [[0, 3, 5, 42]], [[0, 2]]]
    assert call["images"] == [[("Image", (448, 336), "RGB")] * 6, [("Image", (448, 252), "RGB")] * 4,
                              [("Image", (320, 448), "RGB")] * 2]
    assert [a.summary for a in out] == ["stand-in saw 6 frames", "stand-in saw 4 frames", "stand-in saw 2 frames"]
    assert b.max_batch == 4 and b.concurrency == 1


async def test_thinking_escalation_records_both_answers(vtest_packet):
    fast = json.dumps({"summary": "people walking", "objects": [], "activities": [],
                       "rules": [{"rule": "fight", "match": False, "confidence": 0.4, "evidence": "unclear"},
                                 {"rule": "calm", "match": True, "confidence": 0.95, "evidence": "walking"}]})
    slow = ("<think>Looking closely at frames 3-5, nobody touches anyone.</think>"
            + json.dumps({"summary": "people walking", "objects": [], "activities": [],
                          "rules": [{"rule": "fight", "match": False, "confidence": 0.9, "evidence": "no contact"}]}))
    model = StandInModel([fast, slow])
    b = _backend(model)
    rules = {"campus": [PromptRule(id="fight", prompt="people fight", think=True),
                        PromptRule(id="calm", prompt="people walk calmly", think=True),
                        LabelRule(id="people", label="person")]}
    [a] = await b.analyze([vtest_packet], rules, {})
    assert [c["enable_thinking"] for c in model.calls] == [False, True]
    assert model.calls[1]["temporal_ids"] == vtest_packet.temporal_ids
    assert "- id fight:" in model.calls[1]["msgs"][0]["content"][-1]
    assert "- id calm:" not in model.calls[1]["msgs"][0]["content"][-1]  # confident: not re-asked
    by = {m.rule: m for m in a.rules}
    assert by["fight"].confidence == 0.9 and "no contact" in by["fight"].evidence
    assert "fast answer: match=false, confidence=0.40: unclear" in by["fight"].evidence
    assert by["calm"].confidence == 0.95 and "thinking" not in by["calm"].evidence
    raw = json.loads(a.raw)
    assert json.loads(raw["fast"])["rules"][0]["confidence"] == 0.4 and raw["thinking"].startswith("<think>")
    assert a.escalated == 1 and a.status == "ok"


async def test_critical_rules_always_escalate(vtest_packet):
    ans = json.dumps({"summary": "s", "objects": [], "activities": [],
                      "rules": [{"rule": "intruder", "match": True, "confidence": 0.99, "evidence": "x"}]})
    model = StandInModel([ans, ans])
    b = _backend(model)
    rules = {"campus": [PromptRule(id="intruder", prompt="someone climbs in", think=True, severity="critical")]}
    [a] = await b.analyze([vtest_packet], rules, {})
    assert len(model.calls) == 2 and a.escalated == 1
    model2 = StandInModel([ans])
    rules2 = {"campus": [PromptRule(id="intruder", prompt="someone climbs in", think=False, severity="critical")]}
    await _backend(model2).analyze([vtest_packet], rules2, {})
    assert len(model2.calls) == 1  # escalation is opt-in per rule


def test_make_backend_does_not_import_torch():
    b = make_backend(AnalyzerSettings(backend="minicpm"))
    assert b.name == "minicpm" and b.model == "openbmb/MiniCPM-V-4_5"
    assert "torch" not in sys.modules and "transformers" not in sys.modules


async def test_missing_extra_is_a_clear_error():
    # torch is absent from the test environment on purpose (it lives in the `minicpm` extra).
    if "torch" in sys.modules or _importable("torch"):
        pytest.skip("torch is installed here")
    b = MiniCPMBackend(MiniCPMSettings(device="cpu"))
    with pytest.raises(RuntimeError, match=r"'minicpm' extra"):
        await b.start()
    await b.close()


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


@pytest.mark.gpu
@pytest.mark.skipif(os.environ.get("VIGIL_TEST_MINICPM") != "1", reason="opt-in: VIGIL_TEST_MINICPM=1 (GPU + weights)")
async def test_real_model_answers(vtest_packet):
    s = MiniCPMSettings(model_id=os.environ.get("VIGIL_MINICPM_MODEL", "openbmb/MiniCPM-V-4_5"),
                        device=os.environ.get("VIGIL_MINICPM_DEVICE", "cuda"))
    b = MiniCPMBackend(s)
    await b.start()
    try:
        other = make_packet(synthetic(6), camera="empty")
        rules = {"campus": [PromptRule(id="people", prompt="people are walking")]}
        out = await b.analyze([vtest_packet, other], rules, {"campus": "a university campus path"})
    finally:
        await b.close()
    assert out[0].status == "ok", out[0].raw
    assert "person" in out[0].labels or any(m.match for m in out[0].rules)
    assert out[0].visual_tokens == 64
