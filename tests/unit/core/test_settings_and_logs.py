from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
from pydantic import SecretStr

from stockpipe.logs import JsonFormatter, RedactingFilter, redact, register_secret
from stockpipe.settings import ConfigError, KafkaSettings, LakeSettings, StockpipeSettings, load_settings


class DemoSettings(StockpipeSettings):
    kafka: KafkaSettings = KafkaSettings()
    lake: LakeSettings = LakeSettings()
    finnhub_token: SecretStr | None = None
    poll_seconds: int = 15


def test_settings_from_environment_with_nested_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1234")
    monkeypatch.setenv("STOCKPIPE_LAKE__URL", "s3://lake/prefix/")
    settings = load_settings(DemoSettings)
    assert settings.kafka.bootstrap_servers == "127.0.0.1:1234"
    assert settings.lake.url == "s3://lake/prefix"


def test_bad_setting_fails_at_start_with_the_field_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCKPIPE_LAKE__URL", "ftp://nope")
    monkeypatch.setenv("STOCKPIPE_POLL_SECONDS", "often")
    with pytest.raises(ConfigError) as excinfo:
        load_settings(DemoSettings)
    assert "lake.url" in str(excinfo.value)
    assert "poll_seconds" in str(excinfo.value)


def test_secrets_from_mounted_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "STOCKPIPE_FINNHUB_TOKEN").write_text("sekret-from-a-volume")
    monkeypatch.setenv("STOCKPIPE_SECRETS_DIR", str(tmp_path))
    settings = load_settings(DemoSettings)
    assert settings.finnhub_token is not None
    assert settings.finnhub_token.get_secret_value() == "sekret-from-a-volume"
    assert "sekret" not in repr(settings)


def test_missing_secrets_dir_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCKPIPE_SECRETS_DIR", "/no/such/dir")
    with pytest.raises(ConfigError, match="STOCKPIPE_SECRETS_DIR"):
        load_settings(DemoSettings)


def test_tokens_in_urls_are_redacted() -> None:
    url = "https://finnhub.io/api/v1/quote?symbol=AAPL&token=abc123secret"
    assert redact(url) == "https://finnhub.io/api/v1/quote?symbol=AAPL&token=***"


def test_registered_secret_never_reaches_a_json_log_line() -> None:
    register_secret("c0ffee-token-42")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter())
    log = logging.getLogger("test.redaction")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.info("calling finnhub with %s", "c0ffee-token-42", extra={"url": "http://x/quote?token=c0ffee-token-42"})
    line = stream.getvalue()
    assert "c0ffee-token-42" not in line
    assert json.loads(line)["msg"] == "calling finnhub with ***"
