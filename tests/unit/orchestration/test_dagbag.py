"""The DAG files: they import cleanly, do no I/O at import, and pass ruff's Airflow rules."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[3] / "dags"
REPO = DAGS.parent
EXPECTED = {
    "lake_to_bronze",
    "daily_history",
    "backfill_ytd",
    "gap_backfill",
    "dbt_build",
    "pipeline_watch",
    "lake_compaction",
}
# Where imports legitimately read files from: the interpreter, installed packages, our own code.
CODE_ROOTS = (
    *(str(Path(p).resolve()) for p in {sys.prefix, sys.base_prefix, *sysconfig.get_paths().values()}),
    str(REPO / "jobs"),
    str(DAGS),
)

_watching: list[list[str]] = []


def _audit(event: str, args: tuple[object, ...]) -> None:
    if not _watching:
        return
    if event in ("socket.connect", "socket.getaddrinfo", "subprocess.Popen", "os.system", "sqlite3.connect"):
        _watching[-1].append(f"{event} {args[:2]!r}")
    elif event == "open" and isinstance(args[0], str | bytes | Path):
        path = Path(args[0] if not isinstance(args[0], bytes) else args[0].decode()).resolve()
        if not str(path).startswith(CODE_ROOTS):
            _watching[-1].append(f"open {path}")


sys.addaudithook(_audit)


@contextmanager
def io_watch() -> Iterator[list[str]]:
    seen: list[str] = []
    _watching.append(seen)
    try:
        yield seen
    finally:
        _watching.pop()


def _refuse(*_args: object, **_kwargs: object) -> None:
    raise OSError("network access while importing a DAG file")


def test_dagbag_has_every_dag_and_no_import_errors() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    assert set(bag.dags) == EXPECTED
    for dag in bag.dags.values():
        assert dag.max_active_runs == 1, dag.dag_id
        assert "stockpipe" in dag.tags


@pytest.mark.parametrize("path", sorted(DAGS.glob("*.py")), ids=lambda p: p.stem)
def test_a_dag_file_does_no_io_at_import(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import airflow.sdk  # noqa: F401  # Airflow itself may read its config when first imported; DAG files may not

    import stockpipe.orchestration.tasks  # noqa: F401

    monkeypatch.setattr(socket.socket, "connect", _refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", _refuse)
    spec = importlib.util.spec_from_file_location(f"dag_under_test_{path.stem}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with io_watch() as seen:
        spec.loader.exec_module(module)
    assert seen == []


def test_the_io_watch_sees_file_reads_and_connections(tmp_path: Path) -> None:
    outside = tmp_path / "settings.json"
    outside.write_text("{}")
    with io_watch() as seen, socket.socket() as sock:
        outside.read_text()
        sock.settimeout(0.2)
        sock.connect_ex(("127.0.0.1", 9))  # the discard port: refused or not, the attempt is what counts
    assert any(entry.startswith("open") and "settings.json" in entry for entry in seen)
    assert any(entry.startswith("socket.connect") for entry in seen)


def test_ruff_airflow_rules_are_clean() -> None:
    ruff = Path(sys.executable).with_name("ruff")
    result = subprocess.run(
        [str(ruff), "check", str(DAGS), "--select", "AIR", "--no-cache"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
