"""The 80 COCO class names, in the index order COCO-trained detectors (NanoDet) use."""

from __future__ import annotations

COCO_LABELS: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
)

VEHICLES = frozenset({"bicycle", "car", "motorcycle", "bus", "train", "truck", "boat", "airplane"})
ANIMALS = frozenset({"bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe"})

# What the cpu backend reports unless analyzer.cpu.labels says otherwise: what security cameras
# are for (Frigate tracks only `person` by default). Indoor and small-object classes fire on
# CCTV clutter: cars seen from above become "cell phone", "kite", "boat" or "cup".
CCTV_LABELS: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "bus", "train", "truck",
    "bird", "cat", "dog", "horse", "sheep", "cow", "bear",
    "backpack", "umbrella", "handbag", "suitcase",
)
