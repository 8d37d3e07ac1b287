"""The product's one Snowflake client: a Snowpark `Session` per workload, created once and kept.

Each workload that talks to Snowflake (the bronze load job, the continuous loader, its gold reader,
the dashboard's reader, the dbt-build job's change check) holds a `KeptSession`: the session is made on
first use and kept across cycles, so a long-running workload logs in once instead of every cycle; a
session found closed (Snowflake expired it, the network dropped it) is replaced on the next use.
Authentication is the deployment's: key-pair (`private_key_file`, SNOWFLAKE_JWT) in production, a
password where configured. Secrets are read from the settings (the environment) and never logged.
dbt-snowflake keeps its own connections (dbt/profiles.yml reads the same environment).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from tenacity import before_sleep_log, retry, retry_if_exception, stop_after_attempt, wait_exponential

from stockpipe.warehouse.settings import SnowflakeSettings

if TYPE_CHECKING:
    from snowflake.snowpark import Session

log = logging.getLogger(__name__)


def session_config(settings: SnowflakeSettings, query_tag: str, **overrides: Any) -> dict[str, Any]:
    """Snowpark's connection options (handed to the connector it wraps); the session works in UTC."""
    config: dict[str, Any] = {
        "account": settings.account,
        "user": settings.user,
        "role": settings.role,
        "warehouse": settings.warehouse,
        "database": settings.database,
        "schema": settings.bronze_schema,
        "application": "stockpipe",
        "session_parameters": {
            "TIMEZONE": "UTC",
            "QUERY_TAG": query_tag,
            "CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False,
        },
    }
    if settings.password is not None:
        config["password"] = settings.password.get_secret_value()
    if settings.private_key_file:
        config["private_key_file"] = str(settings.private_key_file)
        config["authenticator"] = "SNOWFLAKE_JWT"  # key-pair auth
    if settings.authenticator:
        config["authenticator"] = settings.authenticator
    if settings.host:
        config.update(host=settings.host, port=settings.port or 443, protocol=settings.protocol)
    config.update(overrides)
    return {k: v for k, v in config.items() if v is not None}


def _transient(exc: BaseException) -> bool:
    """A login that may succeed when tried again: the network or the service, not the credentials.

    Told by the connector's error class and numbers (as Snowpark raises them), not by importing it.
    """
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    names = {c.__name__ for c in type(exc).__mro__}
    return "OperationalError" in names or getattr(exc, "errno", None) in {250001, 250003, 290500}


@retry(
    retry=retry_if_exception(_transient),
    stop=stop_after_attempt(3),
    wait=wait_exponential(multiplier=1, max=10),
    before_sleep=before_sleep_log(log, logging.WARNING),
    reraise=True,
)
def create_session(settings: SnowflakeSettings, query_tag: str, **overrides: Any) -> Session:
    """A new Snowpark session (one Snowflake login)."""
    from snowflake.snowpark import Session

    session: Session = Session.builder.configs(session_config(settings, query_tag, **overrides)).create()
    log.info("snowflake session opened (%s, account %s, user %s)", query_tag, settings.account, settings.user)
    return session


class KeptSession:
    """A workload's Snowpark session: made on first use, kept across cycles, replaced once found closed."""

    def __init__(self, settings: SnowflakeSettings, query_tag: str, **overrides: Any) -> None:
        self.settings = settings
        self.query_tag = query_tag
        self.overrides = overrides
        self.opened = 0  # sessions created so far (logins)
        self._session: Session | None = None

    def get(self) -> Session:
        if self._session is not None and self._session.connection.is_closed():
            log.warning("snowflake session (%s) found closed: reconnecting", self.query_tag)
            self._session = None
        if self._session is None:
            self._session = create_session(self.settings, self.query_tag, **self.overrides)
            self.opened += 1
        return self._session

    def close(self) -> None:
        if self._session is not None:
            try:
                self._session.close()
            finally:
                self._session = None

    def __enter__(self) -> KeptSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
