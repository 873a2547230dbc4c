"""The packet frame-size contract (DESIGN §3): keyframes travel at the size the model will use.

MiniCPM-V 4.5's image processor (`max_slice_nums=1`) resizes every image to about
`side x side` of *area* (448 x 448 = 200,704 pixels), sides multiples of its 14 px patch,
aspect kept, enlarging anything smaller. So a frame is sent at exactly that size, where the
processor then leaves it alone: the model sees real pixels at the same 64 visual tokens,
instead of a 448x252 frame blown up to 602x336. Vigil never enlarges a frame: a source
smaller than the model size goes as it is (even sides, for 4:2:0 conversion) and the
processor enlarges it, as it would anyway.

One function, used by ingest (which makes the JPEGs), the offline scheduler and the
analyzer backends that re-fit frames, so every stage agrees on the size.
"""

from __future__ import annotations

import math
from functools import lru_cache

MODEL_SIDE = 448  # MiniCPM-V 4.5's scale_resolution (preprocessor_config.json)
PATCH = 14  # its vision patch size: sides are multiples of it


def _to_patch(length: float) -> int:
    return max(round(length / PATCH) * PATCH, PATCH)


def processor_size(width: int, height: int, side: int = MODEL_SIDE) -> tuple[int, int]:
    """The size the MiniCPM-V processor resizes a `width x height` image to (its
    `find_best_resize(..., allow_upscale=True)`, what `max_slice_nums=1` uses), computed the same way."""
    r = width / height
    h = int(side / math.sqrt(r))
    w = int(h * r)
    return _to_patch(w), _to_patch(h)


@lru_cache(maxsize=1024)  # called per sampled frame; a camera's size rarely changes
def model_frame_size(width: int, height: int, side: int = MODEL_SIDE) -> tuple[int, int]:
    """Width and height a `width x height` source frame is sent at: the processor's own size
    (one the processor maps to itself), never larger than the source in either side.

    1280x720 -> 602x336, 768x576 -> 518x392, 720x1280 -> 336x602, 448x252 -> 448x252 (smaller
    than the model size: sent as is).
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"frame size must be positive, got {width}x{height}")
    even = max(2, width // 2 * 2), max(2, height // 2 * 2)
    if width * height <= side * side:
        return even  # the processor enlarges it; Vigil does not
    t = processor_size(width, height, side)
    if t[0] <= width and t[1] <= height and processor_size(*t, side) == t:
        return t
    # Rounding to whole patches can make the processor's size of its own output differ by a
    # patch (some aspect ratios): take the nearest size it keeps, within the source, closest in aspect.
    near = [(t[0] + PATCH * i, t[1] + PATCH * j) for i in range(-3, 4) for j in range(-3, 4)]
    kept = [c for c in near if PATCH <= c[0] <= width and PATCH <= c[1] <= height and processor_size(*c, side) == c]
    if not kept:  # rare (extreme aspect ratios, sources just above the model size): the processor adjusts a patch
        return t if t[0] <= width and t[1] <= height else even
    aspect = math.log(width / height)
    return min(kept, key=lambda c: (abs(math.log(c[0] / c[1]) - aspect), abs(c[0] * c[1] - side * side)))


__all__ = ["MODEL_SIDE", "PATCH", "model_frame_size", "processor_size"]
