"""Parser settings from the environment: defaults and rejected values."""

from __future__ import annotations

import pytest

from data_parsing.settings import ParserSettings
from movierec.base.settings import ConfigError


def test_defaults() -> None:
    settings = ParserSettings.from_env({})
    assert settings.group_id == "movierec-parser"
    assert settings.common.kafka_topic == "movielog"
    assert (settings.batch_max_events, settings.batch_max_seconds) == (100_000, 1.0)
    assert settings.metrics_port == 9101
    assert settings.auto_offset_reset == "earliest"


def test_overrides() -> None:
    settings = ParserSettings.from_env({"PARSER_GROUP_ID": "g", "KAFKA_TOPIC": "t", "PARSER_BATCH_MAX_EVENTS": "5",
                                        "PARSER_SESSION_TIMEOUT_MS": "2000"})
    assert (settings.group_id, settings.common.kafka_topic, settings.batch_max_events) == ("g", "t", 5)
    assert settings.session_timeout_ms == 2000


@pytest.mark.parametrize("environ", [
    {"PARSER_BATCH_MAX_EVENTS": "0"},
    {"PARSER_BATCH_MAX_SECONDS": "-1"},
    {"PARSER_AUTO_OFFSET_RESET": "middle"},
    {"PARSER_METRICS_PORT": "ninety"},
])
def test_rejected_values(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        ParserSettings.from_env(environ)
