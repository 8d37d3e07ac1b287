"""Settings shared by every workload: one validated object per workload, from environment and files.

Environment variables are prefixed `STOCKPIPE_`; nested fields use `__`
(`STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS`). Secrets can also come from files in a mounted
directory (a Kubernetes Secret volume) named by `STOCKPIPE_SECRETS_DIR`, one file per setting,
named like its environment variable (`STOCKPIPE_FINNHUB_TOKEN`, ...).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from stockpipe.logs import register_secret

SECRETS_DIR_VARIABLE = "STOCKPIPE_SECRETS_DIR"


class ConfigError(Exception):
    """A setting is missing or invalid; the message names the field."""


class KafkaSettings(BaseModel):
    """Where and how the workloads reach Kafka: a local broker (PLAINTEXT), or Strimzi's listeners with
    TLS (the cluster CA mounted from `<cluster>-cluster-ca-cert`) and SCRAM (a KafkaUser's password) or
    mutual TLS (a KafkaUser's `user.crt`/`user.key`)."""

    bootstrap_servers: str = Field("127.0.0.1:19092", description="host:port[,host:port]")
    topic_quotes: str = "quotes"
    topic_trades: str = "trades"
    topic_dlq: str = "dlq"
    topic_heartbeats: str = "heartbeats"
    topic_lake_objects: str = Field("lake-objects", description="objects the consumer wrote (for the bronze loader)")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: Path | None = Field(None, description="PEM of the CA that signed the brokers' certificates")
    ssl_certificate_location: Path | None = Field(None, description="client certificate (mutual TLS)")
    ssl_key_location: Path | None = Field(None, description="client key (mutual TLS)")
    create_topics: bool = Field(
        True, description="create missing topics at start; false in a cluster, where Strimzi's KafkaTopics own them"
    )

    @field_validator("ssl_ca_location", "ssl_certificate_location", "ssl_key_location")
    @classmethod
    def _readable_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value} is not a file")
        return value

    @model_validator(mode="after")
    def _credentials_fit_protocol(self) -> KafkaSettings:
        if self.security_protocol.startswith("SASL_") and not (self.sasl_username and self.sasl_password):
            raise ValueError(f"security_protocol {self.security_protocol} needs sasl_username and sasl_password")
        if (self.ssl_certificate_location is None) != (self.ssl_key_location is None):
            raise ValueError("ssl_certificate_location and ssl_key_location go together")
        if self.sasl_password is not None:
            register_secret(self.sasl_password.get_secret_value())
        return self

    def client_config(self) -> dict[str, str | int | float | bool]:
        """librdkafka properties of this connection (never log them: they may hold the SCRAM password)."""
        config: dict[str, str | int | float | bool] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        if self.security_protocol.startswith("SASL_") and self.sasl_username and self.sasl_password:
            config["sasl.mechanism"] = self.sasl_mechanism
            config["sasl.username"] = self.sasl_username
            config["sasl.password"] = self.sasl_password.get_secret_value()
        if self.security_protocol in ("SSL", "SASL_SSL"):
            for key, path in (
                ("ssl.ca.location", self.ssl_ca_location),
                ("ssl.certificate.location", self.ssl_certificate_location),
                ("ssl.key.location", self.ssl_key_location),
            ):
                if path is not None:
                    config[key] = str(path)
        return config


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


class SecretsDirSource(EnvSettingsSource):
    """Settings from a mounted directory (a Kubernetes Secret volume): one file per setting, named like its
    environment variable, nested fields included (`STOCKPIPE_KAFKA__SASL_PASSWORD`).

    pydantic-settings' own secrets source matches whole field names only, so nested names were silently
    ignored; read as environment variables, they go through the same `__` splitting as the environment.
    """

    def __init__(self, settings_cls: type[BaseSettings], directory: Path) -> None:
        self._directory = directory
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        values: dict[str, str | None] = {}
        # A Secret volume also holds `..data` and timestamped dot-directories: only visible regular files count.
        for path in sorted(self._directory.iterdir()):
            if not path.name.startswith(".") and path.is_file():
                name = path.name if self.case_sensitive else path.name.lower()
                values[name] = path.read_text(encoding="utf-8").strip()
        return values

    def __repr__(self) -> str:
        return f"SecretsDirSource(directory={self._directory})"


class StockpipeSettings(BaseSettings):
    """Base of every workload's settings: environment first, then files in `STOCKPIPE_SECRETS_DIR`."""

    model_config = SettingsConfigDict(
        env_prefix="STOCKPIPE_",
        env_nested_delimiter="__",
        extra="ignore",
        validate_default=True,
    )

    log_level: str = "INFO"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        directory = os.environ.get(SECRETS_DIR_VARIABLE)
        if not directory:
            return init_settings, env_settings
        return init_settings, env_settings, SecretsDirSource(settings_cls, Path(directory))


S = TypeVar("S", bound=StockpipeSettings)


def load_settings(cls: type[S], **overrides: Any) -> S:
    """Build and validate a workload's settings; fail at start with the fields named."""
    secrets_dir = os.environ.get(SECRETS_DIR_VARIABLE)
    if secrets_dir and not Path(secrets_dir).is_dir():
        raise ConfigError(f"{SECRETS_DIR_VARIABLE}: {secrets_dir} is not a directory")
    try:
        return cls(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or cls.__name__}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid {cls.__name__} settings: {problems}") from None
