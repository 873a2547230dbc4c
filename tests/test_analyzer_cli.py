"""`vigil analyze` end to end with the openai backend against the in-suite OpenAI-compatible
server: natural-language rules reach the model as data and its verdicts reach the events."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.conftest import ROOT, run_cli
from tests.fake_openai import FakeOpenAI

pytestmark = pytest.mark.integration


def test_analyze_with_openai_backend_and_prompt_rule(media, tmp_path: Path):
    with FakeOpenAI(delay_s=0.05) as server:
        cfg = tmp_path / "vigil.yaml"
        cfg.write_text(yaml.safe_dump({
            "analyzer": {"backend": "openai", "openai": {"base_url": server.base_url, "concurrency": 4}},
            "rules": [{"id": "cars", "prompt": "a car drives through the car park", "severity": "info"}],
        }))
        res = run_cli(["analyze", str(media / "car-detection.mp4"), "--json", "-c", str(cfg)],
                      env={"OPENAI_API_KEY": "sk-cli-secret"})
        assert res.returncode == 0, res.stderr
        n_requests = len(server.requests)
        auth = {r.headers.get("authorization") for r in server.requests}
    assert "sk-cli-secret" not in res.stderr and "sk-cli-secret" not in res.stdout
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    events = [x for x in lines if x["type"] == "event"]
    alerts = [x for x in lines if x["type"] == "alert"]
    schema = json.loads((ROOT / "docs" / "schema" / "event.schema.json").read_text())
    assert len(events) >= 3 and n_requests == len(events) and auth == {"Bearer sk-cli-secret"}
    for e in events:
        jsonschema.validate(e, schema)
        assert e["backend"] == "openai" and e["status"] == "ok"
        assert e["visual_tokens"] == 64 * len(e["frames"])
        assert e["summary"] == f"fake model: {len(e['frames'])} images"
        assert [r["rule"] for r in e["rules"]] == ["cars"] and e["rules"][0]["match"] is True
    assert {a["rule"] for a in alerts} == {"cars"}  # the model's verdict drove the alert


def test_analyze_with_minicpm_on_the_official_code(media, tmp_path: Path, tiny_minicpm):
    """`vigil analyze` with analyzer.backend minicpm on the tiny random-weight checkpoint: the
    official code runs end to end; its noise answers are marked unparsed, never matches."""
    cfg = tmp_path / "vigil.yaml"
    cfg.write_text(yaml.safe_dump({
        "analyzer": {"backend": "minicpm", "minicpm": {"model_id": str(tiny_minicpm.path), "device": "cpu",
                                                       "dtype": "float32", "max_new_tokens": 16}},
        "rules": [{"id": "cars", "prompt": "a car drives by!", "severity": "info"},
                  {"id": "person", "label": "person", "severity": "warning"}],
    }))
    res = run_cli(["analyze", str(media / "bikes.mp4"), "--json", "-c", str(cfg)], env=tiny_minicpm.env)
    assert res.returncode == 0, res.stderr
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    events = [x for x in lines if x["type"] == "event"]
    schema = json.loads((ROOT / "docs" / "schema" / "event.schema.json").read_text())
    assert len(events) >= 3
    for e in events:
        jsonschema.validate(e, schema)
        assert e["backend"] == "minicpm" and e["model"] == str(tiny_minicpm.path)
        assert e["status"] == "unparsed"
        assert e["visual_tokens"] == 64  # measured: every packet's image slots held its visual tokens
        assert {r["rule"]: r["match"] for r in e["rules"]} == {"cars": False, "person": False}
    assert not [x for x in lines if x["type"] == "alert"]  # noise never raises an alert
