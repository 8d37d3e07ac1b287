"""Each image: built, numeric non-root user, labels, size, and exactly its workload's distributions."""

from __future__ import annotations

import json

import pytest

from stockpipe_dev.localservices.imagebuild import IMAGES
from tests.images.conftest import Images

NAMES = [image.name for image in IMAGES]
LIST_DISTRIBUTIONS = (
    "import importlib.metadata as m, json; "
    "print(json.dumps(sorted({d.metadata['Name'].lower() for d in m.distributions()})))"
)
# Which images' workloads import Airflow, dbt and Snowflake (and so may carry them).
AIRFLOW = {"airflow"}
DBT = {"stockpipe-jobs"}
SNOWFLAKE = {"stockpipe-jobs", "dashboard"}  # Snowpark sessions: warehouse targets and readers, dashboard.queries
STREAM_IMAGE_MAX_MB = 350


def distributions(images: Images, name: str) -> set[str]:
    result = images.run(name, ["-c", LIST_DISTRIBUTIONS], entrypoint="/opt/venv/bin/python")
    assert result.returncode == 0, result.stderr[-2000:]
    return set(json.loads(result.stdout))


@pytest.mark.parametrize("name", NAMES)
def test_image_runs_as_numeric_non_root_with_labels(images: Images, name: str) -> None:
    config = images.inspect(name)["Config"]
    assert isinstance(config, dict)
    user = str(config["User"]).split(":")
    assert user[0].isdigit(), config["User"]
    assert int(user[0]) != 0
    labels = config["Labels"] or {}
    for key in ("title", "source", "version", "revision", "licenses"):
        assert labels.get(f"org.opencontainers.image.{key}"), key
    who = images.run(name, ["-c", "import os; print(os.getuid(), os.getgid())"], entrypoint="/opt/venv/bin/python")
    assert who.returncode == 0, who.stderr
    assert who.stdout.split()[0] == user[0]


@pytest.mark.parametrize("name", NAMES)
def test_airflow_dbt_and_snowflake_only_where_imported(images: Images, name: str) -> None:
    installed = distributions(images, name)
    assert "pydantic" in installed
    assert "typer" in installed
    assert ("apache-airflow" in installed) == (name in AIRFLOW)
    assert ("apache-airflow-core" in installed) == (name in AIRFLOW)
    assert ("dbt-core" in installed) == (name in DBT)
    assert ("snowflake-connector-python" in installed) == (name in SNOWFLAKE)
    assert ("snowflake-snowpark-python" in installed) == (name in SNOWFLAKE)
    # Test and development tools never ship.
    assert not installed & {"pytest", "ruff", "mypy", "playwright", "fakesnow", "hypothesis"}


def test_stream_image_is_lean(images: Images) -> None:
    size_mb = int(images.inspect("stockpipe")["Size"]) / 1e6  # type: ignore[call-overload]
    assert size_mb <= STREAM_IMAGE_MAX_MB, f"stockpipe image is {size_mb:.0f} MB"
    installed = distributions(images, "stockpipe")
    assert {"confluent-kafka", "kopf", "pyarrow", "s3fs"} <= installed
    assert not installed & {"duckdb", "streamlit", "plotly"}


@pytest.mark.parametrize(
    ("name", "command"),
    [
        ("stockpipe", "producer"),
        ("stockpipe", "consumer"),
        ("stockpipe", "operator"),
        ("stockpipe-jobs", "history"),
        ("stockpipe-jobs", "load"),
        ("dashboard", "dashboard"),
    ],
)
def test_entry_points_start_with_only_their_set(images: Images, name: str, command: str) -> None:
    result = images.run(name, [command, "--help"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Usage" in result.stdout


FIND_DEV = """
import importlib.metadata as md, pathlib
roots = [pathlib.Path("/app"), pathlib.Path("/opt/venv")]
print("\\n".join(str(p) for root in roots for p in root.glob("**/stockpipe_dev*")))
print("\\n".join(f"entry point {e.name}" for e in md.entry_points(group="stockpipe.cli")))
"""


@pytest.mark.parametrize("name", NAMES)
def test_no_image_holds_the_dev_tooling(images: Images, name: str) -> None:
    """The dev package (stand-ins, local services, benchmarks) never ships: not its files, not its commands."""
    found = images.run(name, ["-c", FIND_DEV], entrypoint="/opt/venv/bin/python")
    assert found.returncode == 0, found.stderr[-2000:]
    assert found.stdout.strip() == ""
    assert "stockpipe-dev" not in distributions(images, name)
