"""The cpu backend on real footage: people where people are, nothing in an empty scene."""

from __future__ import annotations

import pytest

from analyzer.backends import make_backend
from analyzer.backends.cpu import CpuBackend
from analyzer.settings import AnalyzerSettings, CpuBackendSettings
from bus.messages import LabelRule, PromptRule
from tests.analyzer_helpers import make_packet, read_frames, synthetic


@pytest.fixture(scope="module")
def vtest(media):
    # vtest.avi: a campus path where pedestrians are in view throughout (checked by eye at
    # frames 100 and 500: five to six people clearly visible, 60-90 px tall at 448 px wide).
    return read_frames(media / "vtest.avi", [100, 110, 120, 500, 510, 520])


@pytest.fixture(scope="module")
def car_opening(media):
    # car-detection.mp4 opens on an empty stretch of car park (no people, no cars moving).
    return read_frames(media / "car-detection.mp4", [0, 6, 12, 18, 24])


async def _run(backend: CpuBackend, packets, rules=None):
    try:
        await backend.start()
        return await backend.analyze(packets, rules or {}, {})
    finally:
        await backend.close()


async def test_finds_people_on_vtest(vtest):
    packets = [make_packet(vtest[:3], camera="campus"), make_packet(vtest[3:], camera="campus")]
    rules = {"campus": [LabelRule(id="crowd", label="person", min_count=2), LabelRule(id="dog", label="dog")]}
    out = await _run(CpuBackend(CpuBackendSettings(), concurrency=2), packets, rules)
    for a in out:
        assert a.counts.get("person", 0) >= 2, a.summary
        assert "person" in a.labels and "people detected" in a.summary
        by = {m.rule: m for m in a.rules}
        assert by["crowd"].match and by["crowd"].confidence == 1.0 and "opencv-hog" in by["crowd"].evidence
        assert not by["dog"].match
        assert a.status == "ok" and a.visual_tokens == 0


async def test_empty_scenes_have_no_people(car_opening):
    packets = [make_packet(car_opening, camera="lot", area=0.0), make_packet(synthetic(3), camera="blank", area=0.0)]
    out = await _run(CpuBackend(CpuBackendSettings(faces=True)), packets,
                     {"lot": [LabelRule(id="p", label="person")]})
    for a in out:
        assert a.counts == {} and a.labels == [], a.summary
        assert a.summary.startswith("No people detected; no motion")
    assert out[0].rules[0].match is False


async def test_natural_language_rules_are_declined(vtest):
    rule = PromptRule(id="fence", prompt="someone climbs the fence", severity="critical")
    [a] = await _run(CpuBackend(CpuBackendSettings()), [make_packet(vtest[:2], camera="campus")], {"campus": [rule]})
    [m] = a.rules
    assert m.rule == "fence" and m.match is False and m.confidence == 0.0
    assert "cannot evaluate natural-language rules" in m.evidence


async def test_haar_cascades_as_configured(vtest):
    s = CpuBackendSettings(people=False, cascades={"body": "haarcascade_fullbody.xml"})
    b = CpuBackend(s)
    assert b.model == "opencv-haar-body"
    [a] = await _run(b, [make_packet(vtest[:2], camera="campus")])
    assert set(a.counts) <= {"body"} and "person" not in a.counts  # HOG off: only the cascade ran


async def test_bad_cascade_is_a_clear_error():
    b = CpuBackend(CpuBackendSettings(cascades={"x": "haarcascade_does_not_exist.xml"}))
    with pytest.raises(RuntimeError, match="'x'.*not a readable Haar cascade"):
        await b.start()
    await b.close()


async def test_ocr_without_the_extra_says_how_to_install():
    import importlib.util

    if importlib.util.find_spec("rapidocr_onnxruntime") or importlib.util.find_spec("rapidocr"):
        pytest.skip("rapidocr is installed here")
    b = make_backend(AnalyzerSettings(cpu=CpuBackendSettings(ocr=True)))
    with pytest.raises(RuntimeError, match=r"vigil\[ocr\]"):
        await b.start()
    await b.close()


async def test_ocr_reads_text_when_the_extra_is_installed():
    """Optional extra (not in the test environment: it would pull opencv-python next to the
    headless build); runs wherever `vigil[ocr]` is installed."""
    import importlib.util

    import cv2
    import numpy as np

    if not (importlib.util.find_spec("rapidocr_onnxruntime") or importlib.util.find_spec("rapidocr")):
        pytest.skip("optional extra vigil[ocr] not installed")
    img = np.full((252, 448, 3), 255, np.uint8)
    cv2.putText(img, "GATE 7 EXIT", (30, 140), cv2.FONT_HERSHEY_SIMPLEX, 2.0, (0, 0, 0), 4)
    [a] = await _run(CpuBackend(CpuBackendSettings(people=False, ocr=True)), [make_packet([img, img], area=0.0)])
    assert "text" in a.labels and "GATE" in a.summary and "EXIT" in a.summary


async def test_detectors_run_off_the_event_loop(vtest):
    """HOG takes ~100 ms a frame (300+ ms a packet): the loop must keep ticking while it runs."""
    import asyncio
    import time

    lags: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            t0 = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - t0 - 0.01)

    tick = asyncio.create_task(ticker())
    await _run(CpuBackend(CpuBackendSettings(), concurrency=2), [make_packet(vtest[:3], camera="campus")] * 2)
    done.set()
    await tick
    assert len(lags) >= 10 and max(lags) < 0.25, f"event loop stalled {max(lags) * 1000:.0f} ms"
