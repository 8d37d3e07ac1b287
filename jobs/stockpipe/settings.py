"""Settings shared by every workload: one validated object per workload, from environment and files.

Environment variables are prefixed `STOCKPIPE_`; nested fields use `__`
(`STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS`). Secrets can also come from files in a mounted
directory (a Kubernetes Secret volume) named by `STOCKPIPE_SECRETS_DIR`, one file per setting,
named like its environment variable (`STOCKPIPE_FINNHUB_TOKEN`, ...).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConfigError(Exception):
    """A setting is missing or invalid; the message names the field."""


class KafkaSettings(BaseModel):
    bootstrap_servers: str = Field("127.0.0.1:19092", description="host:port[,host:port]")
    topic_quotes: str = "quotes"
    topic_trades: str = "trades"
    topic_dlq: str = "dlq"
    topic_heartbeats: str = "heartbeats"
    security_protocol: str = "PLAINTEXT"

    def client_config(self) -> dict[str, str | int | float | bool]:
        return {"bootstrap.servers": self.bootstrap_servers, "security.protocol": self.security_protocol}


class LakeSettings(BaseModel):
    url: str = Field("file://./.lake", description="file:///path or s3://bucket[/prefix]")
    s3_endpoint_url: str | None = Field(None, description="S3 endpoint (MinIO or other); None means AWS")
    access_key: SecretStr | None = None
    secret_key: SecretStr | None = None
    region: str = "us-east-1"

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if not (value.startswith("file://") or value.startswith("s3://")):
            raise ValueError("must start with file:// or s3://")
        return value.rstrip("/")


class StockpipeSettings(BaseSettings):
    """Base of every workload's settings."""

    model_config = SettingsConfigDict(
        env_prefix="STOCKPIPE_",
        env_nested_delimiter="__",
        extra="ignore",
        validate_default=True,
    )

    log_level: str = "INFO"


S = TypeVar("S", bound=StockpipeSettings)


def load_settings(cls: type[S], **overrides: Any) -> S:
    """Build and validate a workload's settings; fail at start with the fields named."""
    secrets_dir = os.environ.get("STOCKPIPE_SECRETS_DIR")
    kwargs: dict[str, Any] = dict(overrides)
    if secrets_dir:
        if not Path(secrets_dir).is_dir():
            raise ConfigError(f"STOCKPIPE_SECRETS_DIR: {secrets_dir} is not a directory")
        kwargs["_secrets_dir"] = secrets_dir
    try:
        return cls(**kwargs)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or cls.__name__}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid {cls.__name__} settings: {problems}") from None
