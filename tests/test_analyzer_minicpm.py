"""The minicpm backend on MiniCPM-V 4.5's official remote code (tiny random weights, CPU),
loaded through Vigil's own `load_model` and answering through the real `chat()`.

Random weights give noise for answers, so these tests check the code path, not the words:
every packet's image slots hold its own visual tokens (never the `<unk>` embedding), a
packet's answer in a batch is exactly its answer alone (greedy decoding), thinking
escalation, the frame-size contract against the official processor, and clear errors.
The real weights on a GPU: the opt-in test at the end (docs/analyzer.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from analyzer.backends.minicpm import MiniCPMBackend, check_transformers, packet_images, unmask
from analyzer.backends.minicpm_vision import SlotProbe
from analyzer.backends.model import ModelBackend, Reply
from analyzer.prompts import build_prompt
from analyzer.settings import MiniCPMSettings, ThinkingSettings
from bus.frame_size import model_frame_size, processor_size
from bus.messages import LabelRule, PromptRule
from tests.analyzer_helpers import make_packet, read_frames, synthetic
from tests.conftest import ROOT

FAST_TOKENS = 16  # random weights never stop early: keep generation short on 2 cores


def _settings(tiny, **kw) -> MiniCPMSettings:
    return MiniCPMSettings(**{"model_id": str(tiny.path), "device": "cpu", "dtype": "float32",
                              "max_new_tokens": FAST_TOKENS, **kw})


class Prefill:
    """Records the language model's first input of each generate() (what it was given to read)."""

    def __init__(self, model) -> None:
        self.model = model
        self.calls: list = []

    def __enter__(self) -> Prefill:
        def hook(_m, _a, kw):
            if kw.get("inputs_embeds") is not None:
                self.calls.append(kw["inputs_embeds"].detach().clone())
        self.handle = self.model.llm.register_forward_pre_hook(hook, with_kwargs=True)
        return self

    def __exit__(self, *exc) -> None:
        self.handle.remove()


def _official_solo(loaded, packet, question: str, system: str, backend: MiniCPMBackend) -> str:
    """One packet through the official one-conversation call, nothing of Vigil's in between."""
    model, proc = loaded
    return model.chat(msgs=[{"role": "user", "content": [*packet_images(packet), question]}], tokenizer=proc.tokenizer,
                      processor=proc, use_image_id=False, max_slice_nums=1, temporal_ids=packet.temporal_ids,
                      enable_thinking=False, system_prompt=system, max_new_tokens=FAST_TOKENS, **backend.decoding())


@pytest.fixture(scope="module")
def campus(media):
    frames = read_frames(media / "vtest.avi", [100, 104, 108, 112, 116, 120])
    return make_packet(frames, camera="campus", ts=[10.0, 10.4, 10.8, 11.2, 11.6, 12.0])


@pytest.fixture(scope="module")
def mixed(media, campus):
    """Five cameras: 1..6 frames, landscape and portrait, one packet in two temporal groups."""
    cars = read_frames(media / "car-detection.mp4", [40, 44, 48, 52, 56, 60])
    return [
        campus,  # 768x576 -> 518x392, 6 frames
        make_packet(synthetic(4, 640, 360, seed=1), camera="gate", ts=[0.0, 0.33, 0.5, 4.3]),  # -> 602x336
        make_packet(synthetic(2, 360, 640, seed=2), camera="dock", ts=[7.0, 7.25]),  # portrait -> 336x602
        make_packet(synthetic(1, 448, 252, seed=3), camera="lobby"),  # smaller than the model size: as is
        make_packet(cars, camera="yard", packing=3),  # 768x432 -> 602x336, groups of 3
    ]


async def test_one_packet_through_load_model(tiny_minicpm, campus):
    b = MiniCPMBackend(_settings(tiny_minicpm), ThinkingSettings())
    await b.start()  # Vigil's load_model on the official code
    try:
        rules = {"campus": [PromptRule(id="group", prompt="three or more people walk together!"),
                            LabelRule(id="people", label="person")]}
        [a] = await b.analyze([campus], rules, {"campus": "a university path"})
    finally:
        await b.close()
    assert (campus.width, campus.height) == (518, 392) and campus.temporal_ids == [[0, 4, 8, 12, 16, 20]]
    assert a.visual_tokens == 64 and a.seen is True  # measured: all 64 image slots held visual tokens
    # Random weights answer noise: unparsed, kept, and never a match.
    assert a.status == "unparsed" and a.answer and a.raw == a.answer[:8000]
    assert [(m.rule, m.match) for m in a.rules] == [("group", False), ("people", False)]
    assert "three or more people walk together!" in a.prompt and "a university path" in a.prompt


async def test_batch_gives_every_packet_its_own_frames_and_its_solo_answer(tiny_minicpm, tiny_loaded, mixed):
    model, proc = tiny_loaded
    b = MiniCPMBackend(_settings(tiny_minicpm, max_batch=8), ThinkingSettings(), loaded=tiny_loaded)
    assert [(p.width, p.height, len(p.frames), len(p.temporal_ids)) for p in mixed] == [
        (518, 392, 6, 1), (602, 336, 4, 1), (336, 602, 2, 1), (448, 252, 1, 1), (602, 336, 6, 2)]
    rules = {"gate": [PromptRule(id="loiter", prompt="someone waits at the gate")]}
    contexts = {"dock": "a loading dock; trucks are normal"}
    with Prefill(model) as batch_in:
        out = await b.analyze(mixed, rules, contexts)
    await b.close()
    [embeds] = batch_in.calls  # one batched generation for the five packets
    assert embeds.shape[0] == len(mixed)
    for p, a in zip(mixed, out, strict=True):
        assert a.seen is True and a.visual_tokens == 64 * len(p.temporal_ids), p.camera
        prompt = build_prompt(p, rules.get(p.camera, []), contexts.get(p.camera, ""))
        with Prefill(model) as solo_in:
            solo = _official_solo(tiny_loaded, p, unmask(prompt.question), unmask(prompt.system), b)
        # The packet's whole input in the batch (left-padded) is exactly its input alone, whose
        # image slots the official one-conversation path fills with this packet's visual tokens.
        [alone] = solo_in.calls
        n = alone.shape[1]
        assert np.array_equal(embeds[mixed.index(p), -n:].numpy(), alone[0].numpy()), p.camera
        assert a.answer == solo, p.camera  # greedy decoding: batch answer == solo answer


async def test_official_batched_call_leaves_packets_blind_and_the_probe_sees_it(tiny_loaded, mixed):
    """Why Vigil computes visual tokens per packet: the official batched path (no
    vision_hidden_states) answers packets 2..N without frames. The probe that measures every
    event's visual_tokens catches exactly that."""
    model, proc = tiny_loaded
    packets = mixed[:3]
    msgs = [[{"role": "user", "content": [*packet_images(p), "what happens?"]}] for p in packets]
    with SlotProbe(model, proc.tokenizer.unk_token_id, len(packets)) as probe:
        model.chat(msgs=msgs, tokenizer=proc.tokenizer, processor=proc, use_image_id=False, max_slice_nums=1,
                   temporal_ids=[p.temporal_ids for p in packets], enable_thinking=False, max_new_tokens=FAST_TOKENS,
                   sampling=False, num_beams=1)
    assert probe.unk_rows == [0, 64, 64]


async def test_thinking_escalation_on_the_official_code(tiny_minicpm, tiny_loaded, campus, mixed):
    b = MiniCPMBackend(_settings(tiny_minicpm), ThinkingSettings(max_new_tokens=64), loaded=tiny_loaded)
    gate = mixed[1]
    rules = {c: [PromptRule(id="fall", prompt="a person falls", think=True),
                 PromptRule(id="calm", prompt="people walk calmly")] for c in ("campus", "gate")}
    out = await b.analyze([campus, gate], rules, {})
    for a in out:
        # The fast answer was unparsed, so the `think` rule was re-asked with enable_thinking=True.
        assert a.escalated == 1 and a.seen is True and a.visual_tokens == 128  # 64 fast + 64 thinking
        raw = json.loads(a.raw)
        assert set(raw) == {"fast", "thinking"} and raw["thinking"].startswith("<think>\n")  # chat()'s prefill
        assert "[thinking re-ask]" in a.prompt and "- id fall:" in a.prompt.split("[thinking re-ask]")[1]
        assert "- id calm:" not in a.prompt.split("[thinking re-ask]")[1]
        assert all(not m.match for m in a.rules) and a.status == "unparsed"


async def test_greedy_by_default_sampling_on_request(tiny_minicpm, tiny_loaded, campus):
    greedy = MiniCPMBackend(_settings(tiny_minicpm), loaded=tiny_loaded)
    assert greedy.decoding() == {"sampling": False, "num_beams": 1, "repetition_penalty": 1.0}
    first, again = [(await greedy.analyze([campus]))[0].answer for _ in range(2)]
    assert first == again  # the same packet, the same answer
    sampled = MiniCPMBackend(_settings(tiny_minicpm, sampling=True), loaded=tiny_loaded)
    assert sampled.decoding() == {"sampling": True}
    assert (await sampled.analyze([campus]))[0].seen is True


def test_exclamation_marks_reach_the_model(tiny_loaded):
    """Token 0 is `!` and the processor masks token 0 out of attention."""
    _, proc = tiny_loaded
    text = "Alarm! A person climbs the fence!!"
    assert 0 in proc.tokenizer.encode(text)
    ids = proc.tokenizer.encode(unmask(text))
    assert 0 not in ids and proc.tokenizer.decode(ids) == "Alarm！ A person climbs the fence！！"


def test_frame_size_contract_is_the_official_processors_own(tiny_loaded):
    ip = tiny_loaded.processor.image_processor
    side, patch = ip.scale_resolution, ip.patch_size
    assert (side, patch) == (448, 14)
    for w in range(120, 2000, 37):
        for h in range(120, 2000, 53):
            assert processor_size(w, h) == ip.find_best_resize((w, h), side, patch, allow_upscale=True), (w, h)
    sources = [(1280, 720), (1920, 1080), (3840, 2160), (768, 576), (768, 432), (640, 480), (720, 1280),
               (1080, 1920), (1000, 1000), (2560, 1080), (1280, 1024), (704, 576)]
    for w, h in sources:
        size = model_frame_size(w, h)
        assert size[0] <= w and size[1] <= h and size[0] % 14 == 0 and size[1] % 14 == 0
        # The processor leaves a keyframe at this size as it is: the model sees these pixels.
        assert ip.find_best_resize(size, side, patch, allow_upscale=True) == size, (w, h)
    for w, h in [(448, 252), (320, 240), (160, 90)]:  # smaller: never enlarged by Vigil
        assert model_frame_size(w, h) == (w, h)


async def test_blind_packet_is_an_error_event_never_a_verdict():
    """Should a packet ever reach the model without its frames (measured < expected), its
    answer is discarded: status error, every rule unmatched, counted as blind."""

    class Answers(ModelBackend):
        name = "measured"

        async def generate(self, prompts, thinking):
            good = '{"summary": "a person falls", "objects": [{"label": "person", "count": 1}], ' \
                   '"rules": [{"rule": "fall", "match": true, "confidence": 0.99, "evidence": "falls"}]}'
            return [Reply(good, 64), Reply(good, 0)]

        def visual_tokens(self, packet):
            return 64

    rules = {c: [PromptRule(id="fall", prompt="a person falls"), LabelRule(id="p", label="person")] for c in "ab"}
    seen, blind = await Answers(ThinkingSettings()).analyze(
        [make_packet(synthetic(2), camera="a"), make_packet(synthetic(2), camera="b")], rules, {})
    assert seen.status == "ok" and seen.seen is True and seen.rules[0].match
    assert blind.status == "error" and blind.seen is False and blind.visual_tokens == 0
    assert [m.match for m in blind.rules] == [False, False] and "0 of 64 image slots" in blind.rules[0].evidence
    assert blind.labels == ["motion"] and "a person falls" in blind.raw  # the answer kept, not used


def test_transformers_versions_are_named():
    for bad in ("4.44.2", "4.50.3", "5.0.0"):
        with pytest.raises(RuntimeError, match=r"transformers>=4\.51,<4\.58 .*found " + bad.replace(".", r"\.")):
            check_transformers(bad)
    for good in ("4.51.0", "4.57.6"):
        check_transformers(good)


def test_float32_is_a_setting():
    assert MiniCPMSettings(device="cpu", dtype="float32").dtype == "float32"
    with pytest.raises(ValueError):
        MiniCPMSettings(dtype="float8")


def _python(code: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={**os.environ, **(env or {})})


def test_make_backend_does_not_import_torch():
    res = _python("import sys\nfrom analyzer.backends import make_backend\n"
                  "from analyzer.settings import AnalyzerSettings\n"
                  "b = make_backend(AnalyzerSettings(backend='minicpm'))\n"
                  "assert b.name == 'minicpm' and b.model == 'openbmb/MiniCPM-V-4_5'\n"
                  "assert 'torch' not in sys.modules and 'transformers' not in sys.modules\n")
    assert res.returncode == 0, res.stderr


def test_missing_torchvision_is_a_clear_error(tiny_minicpm):
    if tiny_minicpm.env == {}:
        pytest.skip("a working torchvision is installed here")  # GPU machines with the 'minicpm' extra
    res = _python("import asyncio\nfrom analyzer.backends.minicpm import MiniCPMBackend\n"
                  "from analyzer.settings import MiniCPMSettings\n"
                  f"s = MiniCPMSettings(model_id={str(tiny_minicpm.path)!r}, device='cpu', dtype='float32')\n"
                  "b = MiniCPMBackend(s)\n"
                  "asyncio.run(b.start())\n")
    assert res.returncode != 0
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("RuntimeError: MiniCPM-V 4.5's code imports torchvision") and "docs/analyzer.md" in last


@pytest.mark.gpu
@pytest.mark.skipif(os.environ.get("VIGIL_TEST_MINICPM") != "1", reason="opt-in: VIGIL_TEST_MINICPM=1 (GPU + weights)")
async def test_real_model_answers(campus):
    s = MiniCPMSettings(model_id=os.environ.get("VIGIL_MINICPM_MODEL", "openbmb/MiniCPM-V-4_5"),
                        device=os.environ.get("VIGIL_MINICPM_DEVICE", "cuda"))
    b = MiniCPMBackend(s)
    await b.start()
    try:
        other = make_packet(synthetic(6), camera="empty")
        rules = {"campus": [PromptRule(id="people", prompt="people are walking")]}
        out = await b.analyze([campus, other], rules, {"campus": "a university campus path"})
        [solo] = await b.analyze([campus], rules, {"campus": "a university campus path"})
    finally:
        await b.close()
    assert out[0].status == "ok", out[0].raw
    assert "person" in out[0].labels or any(m.match for m in out[0].rules)
    assert all(a.seen and a.visual_tokens == 64 for a in out)
    assert solo.answer == out[0].answer  # greedy: batched == alone
