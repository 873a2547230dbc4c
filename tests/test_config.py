"""The YAML schema: the example validates; errors name the key and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli
from vigil.config import ConfigError, load_config, parse_config


def test_example_config_is_valid():
    cfg = load_config(ROOT / "vigil.example.yaml")
    assert cfg.cameras and cfg.rules


@pytest.mark.parametrize("data, key", [
    ({"cameras": [{"id": "a", "url": "x", "sample_fps": "fast"}]}, "cameras.0.sample_fps"),
    ({"cameras": [{"id": "a"}]}, "cameras.0"),
    ({"cameras": [{"id": "bad id", "url": "x"}]}, "cameras.0.id"),
    ({"scheduler": {"motion": {"threshold": 0}}}, "scheduler.motion.threshold"),
    ({"analyzer": {"backend": "gpt"}}, "analyzer.backend"),
    ({"rules": [{"id": "r", "label": "person", "min_count": 0}]}, "rules.0.min_count"),
    ({"ingest": {"sample_rate": 5}}, "ingest.sample_rate"),
    ({"unknown_section": {}}, "unknown_section"),
])
def test_errors_name_the_key(data, key):
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    assert str(err.value).startswith(key), str(err.value)


def test_duplicate_camera_ids():
    with pytest.raises(ConfigError, match="duplicate camera"):
        parse_config({"cameras": [{"id": "a", "url": "x"}, {"id": "a", "url": "y"}]})


def test_check_config_cli(tmp_path: Path):
    ok = run_cli(["check-config", "-c", str(ROOT / "vigil.example.yaml")])
    assert ok.returncode == 0, ok.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("cameras:\n  - id: a\n    url: x\n    sample_fps: [1\n")
    res = run_cli(["check-config", "-c", str(bad)])
    assert res.returncode == 2 and "not valid YAML" in res.stderr and "line" in res.stderr
    bad.write_text("web:\n  port: 99999\n")
    res = run_cli(["check-config", "-c", str(bad)])
    assert res.returncode == 2 and "web.port" in res.stderr
