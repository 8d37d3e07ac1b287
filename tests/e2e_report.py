"""`make e2e`'s record: `--e2e-report PATH` writes each test's outcome and duration as JSON (.bench/e2e.json).

The in-cluster acceptance tests run outside `make test` (they need a node, the images and minutes each); this
file is what a reviewer reads of their last run: when, on which commit, what passed, how long each took.

A test that proves one of the issues' named checks carries `@pytest.mark.e2e_check("name")`: the record's
`checks` map that name to {passed, seconds, detail}, where detail is what the test recorded with
`record_property("detail", ...)`. Measurements a test records as `record_property("cluster.<key>", value)`
are merged into cluster.json beside the report (the numbers `stockpipe bench cluster` also writes there).
"""

from __future__ import annotations

import json
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

OPTION = "--e2e-report"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(OPTION, metavar="PATH", default=None, help="write the run's outcomes and durations as JSON")


def _commit(root: Path) -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


class E2eReport:
    def __init__(self, path: Path, root: Path) -> None:
        self.path, self.root = path, root
        self.started = time.monotonic()
        self.started_at = datetime.now(UTC)
        self.tests: dict[str, dict[str, Any]] = {}
        self.check_names: dict[str, list[str]] = {}
        self.details: dict[str, list[str]] = {}
        self.metrics: dict[str, Any] = {}

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            names = [str(mark.args[0]) for mark in item.iter_markers("e2e_check")]
            if names:
                self.check_names[item.nodeid] = names

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # The item's properties ride on each phase's report; teardown's holds all of them.
        for key, value in report.user_properties if report.when == "teardown" else ():
            if key == "detail":
                self.details.setdefault(report.nodeid, []).append(str(value))
            elif key.startswith("cluster."):  # "cluster.a.b": key b of the measurement a
                *path, last = key.removeprefix("cluster.").split(".")
                node = self.metrics
                for part in path:
                    node = node.setdefault(part, {})
                node[last] = value
        entry = self.tests.setdefault(report.nodeid, {"outcome": "passed", "duration_s": 0.0})
        entry["duration_s"] = round(entry["duration_s"] + report.duration, 2)
        # A failure in setup, call or teardown fails the test; a skip is recorded with its reason.
        if report.failed:
            entry["outcome"] = "error" if report.when != "call" else "failed"
        elif report.skipped and entry["outcome"] == "passed":
            entry["outcome"] = "skipped"
            entry["reason"] = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else str(report.longrepr)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        outcomes = [entry["outcome"] for entry in self.tests.values()]
        record = {
            "commit": _commit(self.root),
            "started_at": self.started_at.isoformat(timespec="seconds"),
            "wall_s": round(time.monotonic() - self.started, 1),
            "exit_status": int(exitstatus),
            **{kind: outcomes.count(kind) for kind in ("passed", "failed", "error", "skipped")},
            # Keyed by test name (the module's name before it): what the issues' done-means cite.
            "tests": {nodeid.split("/")[-1].replace(".py::", "::"): entry for nodeid, entry in self.tests.items()},
            "checks": {
                name: {
                    "passed": self.tests.get(nodeid, {}).get("outcome") == "passed",
                    "seconds": self.tests.get(nodeid, {}).get("duration_s", 0.0),
                    "detail": "; ".join(self.details.get(nodeid, []))
                    or self.tests.get(nodeid, {}).get("outcome", "not run"),
                }
                for nodeid, names in self.check_names.items()
                for name in names
            },
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(record, indent=2) + "\n")
        if self.metrics:
            cluster = self.path.parent / "cluster.json"
            known = json.loads(cluster.read_text()) if cluster.exists() else {}
            for key, value in self.metrics.items():
                both = isinstance(value, dict) and isinstance(known.get(key), dict)
                known[key] = {**known[key], **value} if both else value
            cluster.write_text(json.dumps(known, indent=2) + "\n")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e_check(name): the test proves the named check of .bench/e2e.json")
    path = config.getoption(OPTION)
    if path and not hasattr(config, "workerinput"):  # the controller records; xdist workers report to it
        config.pluginmanager.register(E2eReport(Path(path), config.rootpath), "e2e_report")
