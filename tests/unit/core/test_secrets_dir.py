"""Every secret setting of every workload is read from a mounted Secret directory, nested fields included.

The secret fields are discovered from the settings models themselves, so a new secret setting is covered
the day it is added: a file named like its environment variable (`STOCKPIPE_KAFKA__SASL_PASSWORD`) in
`STOCKPIPE_SECRETS_DIR` must reach the field.
"""

from __future__ import annotations

import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel, SecretStr

from stockpipe.alerts.slack import AlertSettings
from stockpipe.batch.settings import HistorySettings
from stockpipe.operator.settings import OperatorSettings
from stockpipe.orchestration.watch import WatchSettings
from stockpipe.settings import KafkaSettings, StockpipeSettings, load_settings
from stockpipe.stream.consumer import ConsumerSettings
from stockpipe.stream.producer import ProducerSettings
from stockpipe.warehouse.settings import WarehouseSettings

pytestmark = pytest.mark.unit

WORKLOADS: list[type[StockpipeSettings]] = [
    AlertSettings,
    ConsumerSettings,
    HistorySettings,
    OperatorSettings,
    ProducerSettings,
    WarehouseSettings,
    WatchSettings,
]


def _model_of(annotation: object) -> type[BaseModel] | None:
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _secret_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, field in model.model_fields.items():
        path = (*prefix, name)
        if SecretStr in (field.annotation, *typing.get_args(field.annotation)):
            yield path
        elif (nested := _model_of(field.annotation)) is not None:
            yield from _secret_paths(nested, path)


CASES = sorted({(cls.__name__, path) for cls in WORKLOADS for path in _secret_paths(cls)})


def test_every_kind_of_secret_is_discovered() -> None:
    found = {path for _, path in CASES}
    # The ones the chart mounts; a rename here must be a rename in the chart too.
    for expected in [
        ("finnhub_token",),
        ("slack_webhook_url",),
        ("kafka", "sasl_password"),
        ("lake", "access_key"),
        ("lake", "secret_key"),
        ("warehouse", "snowflake", "password"),
    ]:
        assert expected in found


@pytest.mark.parametrize(("workload", "path"), CASES, ids=[f"{w}:{'.'.join(p)}" for w, p in CASES])
def test_secret_setting_from_a_mounted_file(
    workload: str, path: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cls = next(c for c in WORKLOADS if c.__name__ == workload)
    variable = "STOCKPIPE_" + "__".join(part.upper() for part in path)
    value = f"from-a-volume-{'-'.join(path)}"
    (tmp_path / variable).write_text(value + "\n")  # kubectl create secret --from-file keeps the newline
    # What a Secret volume also holds: the kubelet's atomic-update bookkeeping.
    (tmp_path / "..data").mkdir()
    monkeypatch.setenv("STOCKPIPE_SECRETS_DIR", str(tmp_path))
    settings: object = load_settings(cls)
    for part in path:
        settings = getattr(settings, part)
    assert isinstance(settings, SecretStr)
    assert settings.get_secret_value() == value


def test_environment_wins_over_the_secrets_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "STOCKPIPE_LAKE__SECRET_KEY").write_text("from-file")
    monkeypatch.setenv("STOCKPIPE_SECRETS_DIR", str(tmp_path))
    monkeypatch.setenv("STOCKPIPE_LAKE__SECRET_KEY", "from-env")
    settings = load_settings(WarehouseSettings)
    assert settings.lake.secret_key is not None
    assert settings.lake.secret_key.get_secret_value() == "from-env"


def test_kafka_scram_over_tls_from_a_mounted_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "STOCKPIPE_KAFKA__SASL_PASSWORD").write_text("scram-from-strimzi")
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("STOCKPIPE_SECRETS_DIR", str(secrets))
    monkeypatch.setenv("STOCKPIPE_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("STOCKPIPE_KAFKA__SASL_USERNAME", "stockpipe-consumer")
    monkeypatch.setenv("STOCKPIPE_KAFKA__SSL_CA_LOCATION", str(ca))
    monkeypatch.setenv("STOCKPIPE_KAFKA__CREATE_TOPICS", "false")
    kafka = load_settings(ConsumerSettings).kafka
    assert kafka.create_topics is False
    assert kafka.client_config() == {
        "bootstrap.servers": "127.0.0.1:19092",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "stockpipe-consumer",
        "sasl.password": "scram-from-strimzi",
        "ssl.ca.location": str(ca),
    }
    assert "scram-from-strimzi" not in repr(kafka)


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"security_protocol": "SASL_SSL"}, "needs sasl_username and sasl_password"),
        ({"security_protocol": "TLS"}, "security_protocol"),
        ({"sasl_mechanism": "GSSAPI"}, "sasl_mechanism"),
        ({"ssl_ca_location": "/no/such/ca.crt"}, "ssl_ca_location"),
    ],
)
def test_bad_kafka_security_settings_fail_with_the_field_named(values: dict[str, str], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        KafkaSettings.model_validate(values)
