"""A workload's Snowpark session, on Snowpark's local testing mode (no Snowflake, no stand-in): kept
across uses, replaced once found closed; the connection options carry key-pair auth and never log secrets."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from stockpipe.warehouse.settings import SnowflakeSettings
from stockpipe.warehouse.snowpark_session import KeptSession, create_session, session_config

SECRET = "s3cret-not-for-logs"


def test_key_pair_auth_and_utc_sessions(tmp_path: Path) -> None:
    key = tmp_path / "rsa_key.p8"
    config = session_config(
        SnowflakeSettings(account="org-acct", user="LOADER", private_key_file=key), "stockpipe-continuous-loader"
    )
    assert config["authenticator"] == "SNOWFLAKE_JWT"
    assert config["private_key_file"] == str(key)
    assert "password" not in config
    assert config["session_parameters"]["TIMEZONE"] == "UTC"
    assert config["session_parameters"]["QUERY_TAG"] == "stockpipe-continuous-loader"
    assert "host" not in config  # the account's own host unless overridden


def test_a_kept_session_is_made_once_and_replaced_when_closed(caplog: pytest.LogCaptureFixture) -> None:
    settings = SnowflakeSettings(account="org-acct", user="LOADER", password=SECRET)
    caplog.set_level(logging.DEBUG)
    kept = KeptSession(settings, "stockpipe-dashboard", local_testing=True)
    first = kept.get()
    for _ in range(20):
        assert kept.get() is first
    assert kept.opened == 1
    assert first.create_dataframe([[1, "AAPL"]], schema=["n", "symbol"]).collect()[0][1] == "AAPL"

    first.close()  # as when Snowflake ends an idle session
    second = kept.get()
    assert second is not first
    assert kept.opened == 2
    kept.close()
    assert second.connection.is_closed()
    assert SECRET not in caplog.text


def test_create_session_logs_who_not_how(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    session = create_session(
        SnowflakeSettings(account="org-acct", user="LOADER", password=SECRET),
        "stockpipe-load-bronze",
        local_testing=True,
    )
    session.close()
    assert "stockpipe-load-bronze" in caplog.text
    assert SECRET not in caplog.text
