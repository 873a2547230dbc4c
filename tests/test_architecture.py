"""The floor plan as a check: vigil/ -> stages -> bus/. Stages never import each other (they
meet only through the bus); bus/ imports no stage; nothing below vigil/ imports vigil/."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

STAGES = ("ingest", "scheduler", "analyzer", "alerts", "recorder", "web")
LAYERS = ("vigil", *STAGES, "bus")


def imported_packages(folder: Path, root: Path = ROOT) -> dict[str, set[str]]:
    """Top-level project package -> files under `folder` importing it (relative imports resolved)."""
    found: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [folder.name if node.level else (node.module or "")]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top == "vigil" and name.split(".")[1:2] and name.split(".")[1] in LAYERS:
                    top = name.split(".")[1]  # installed as vigil.<stage>
                if top in LAYERS:
                    found.setdefault(top, set()).add(str(path.relative_to(root)))
    return found


@pytest.mark.parametrize("layer", [*STAGES, "bus"])
def test_layer_imports_only_what_is_below_it(layer):
    allowed = {layer, "bus"}
    bad = {pkg: files for pkg, files in imported_packages(ROOT / layer).items() if pkg not in allowed}
    assert not bad, f"{layer}/ may import only {sorted(allowed)}; found {bad}"


def test_the_check_sees_imports(tmp_path):
    (tmp_path / "alerts").mkdir()
    (tmp_path / "alerts" / "x.py").write_text("from scheduler.packer import Packer\nimport bus.names\nfrom . import y\n")
    found = imported_packages(tmp_path / "alerts", tmp_path)
    assert set(found) == {"scheduler", "bus", "alerts"}
