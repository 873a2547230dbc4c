"""Alerts config: webhook endpoints and new rule kinds fail with the key named."""

from __future__ import annotations

import pytest

from vigil.config import ConfigError, parse_config


def test_webhook_endpoint_config_errors_name_the_key():
    with pytest.raises(ConfigError) as err:
        parse_config({"alerts": {"webhooks": {"endpoints": [{"id": "a", "url": "http://10.0.0.1/x", "secret_env": "E"}]}}})
    assert str(err.value).startswith("alerts.webhooks.endpoints.0") and "allow_private" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse_config({"alerts": {"webhooks": {"endpoints": [{"id": "a", "url": "https://h.example/", "secret_env": "E",
                                                            "events": ["alert.bogus"]}]}}})
    assert str(err.value).startswith("alerts.webhooks.endpoints.0.events.0")


def test_rule_kind_errors_name_the_key():
    with pytest.raises(ConfigError) as err:
        parse_config({"rules": [{"id": "r", "kind": "dwell", "min_s": 0}]})
    assert str(err.value).startswith("rules.0.min_s")
    with pytest.raises(ConfigError) as err:
        parse_config({"rules": [{"id": "r", "label": "car", "schedule": [{"start": "7:00", "end": "08:00"}]}]})
    assert str(err.value).startswith("rules.0.schedule")
    cfg = parse_config({"rules": [{"id": "r", "kind": "count", "label": "car", "min": 2, "max": 5, "group": "lot"}]})
    assert cfg.rules[0].max == 5 and cfg.rules[0].group == "lot"
