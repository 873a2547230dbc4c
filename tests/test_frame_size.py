"""The packet frame-size contract (bus/frame_size.py, DESIGN §3), worked out by hand, and the
JPEGs ingest really makes. (The check against the official processor's own code is in
test_analyzer_minicpm.py, which needs transformers.)"""

from __future__ import annotations

import av
import cv2
import numpy as np
import pytest

from bus.frame_size import model_frame_size, processor_size
from ingest.prepare import prepare


@pytest.mark.parametrize(("source", "size"), [
    ((1280, 720), (602, 336)),  # 16:9: h = int(448 / sqrt(16/9)) = 336, w = int(336 * 16/9) = 597 -> 43 * 14
    ((1920, 1080), (602, 336)),
    ((3840, 2160), (602, 336)),
    ((768, 432), (602, 336)),
    ((768, 576), (518, 392)),  # 4:3: h = int(387.98) = 387 -> 28 * 14, w = int(516) -> 37 * 14
    ((640, 480), (518, 392)),
    ((720, 1280), (336, 602)),  # portrait
    ((1000, 1000), (448, 448)),
    ((2560, 1080), (686, 294)),
    ((448, 252), (448, 252)),  # smaller than the model size: never enlarged by Vigil
    ((320, 240), (320, 240)),
    ((16, 16), (16, 16)),
    ((321, 241), (320, 240)),  # even sides (4:2:0)
])
def test_worked_examples(source, size):
    assert model_frame_size(*source) == size


def test_the_processor_keeps_the_sizes_we_send():
    n = misses = 0
    for w in range(100, 4000, 13):
        for h in range(100, 4000, 17):
            if max(w / h, h / w) > 2.5:
                continue
            size = model_frame_size(w, h)
            assert size[0] <= w and size[1] <= h  # never larger than the source
            assert model_frame_size(*size) == size  # sending it again changes nothing
            if w * h > 448 * 448:  # shrunk: to a size the processor maps to itself
                n += 1
                kept = processor_size(*size)
                if kept != size:  # a few sources just above the model size have none within them
                    misses += 1
                    assert abs(kept[0] - size[0]) <= 14 and abs(kept[1] - size[1]) <= 14
                assert size[0] * size[1] <= 1.1 * 448 * 448
    assert misses <= 0.001 * n, (misses, n)


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="positive"):
        model_frame_size(0, 720)


def test_ingest_makes_jpegs_at_the_model_size(media):
    with av.open(str(media / "car-detection.mp4")) as c:
        frame = next(c.decode(video=0))
    assert (frame.width, frame.height) == (768, 432)
    luma, jpeg, w, h = prepare(frame, 160, 448, 85)
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert (w, h) == (602, 336) and img.shape[:2] == (336, 602)
    assert luma.shape == (90, 160)
