"""The house rules a reviewer would otherwise check by hand: the product package holds only the product,
its import contracts hold, and no module grows past 450 lines without a reason at its top."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from stockpipe_dev.localservices.imagebuild import uv_binary

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
MAX_LINES = 450
DEV_COMMANDS = {"services", "cluster", "bench", "demo"}


def test_import_contracts_hold() -> None:
    """Layers, the product apart from the dev tooling, no cycles (pyproject's [tool.importlinter])."""
    result = subprocess.run(
        [str(BIN / "lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_no_long_module_without_a_reason() -> None:
    long = []
    for path in sorted((ROOT / "jobs").rglob("*.py")):
        lines = path.read_text().splitlines()
        if len(lines) > MAX_LINES and not any(line.startswith("# size: ") for line in lines[:3]):
            long.append(f"{path.relative_to(ROOT)}: {len(lines)} lines")
    assert not long, "over 450 lines without a `# size: <reason>` line at the top:\n" + "\n".join(long)


def test_importing_the_product_cli_loads_no_dev_module() -> None:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import stockpipe.cli"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line]
    assert "stockpipe.cli" in imported
    assert not [name for name in imported if name.split(".")[0] == "stockpipe_dev"]


def test_the_product_cli_knows_no_dev_command() -> None:
    from stockpipe.cli import app

    names = {group.name for group in app.registered_groups} | {c.name for c in app.registered_commands}
    assert {"producer", "consumer", "history", "load"} <= names
    assert not names & DEV_COMMANDS


def test_dev_commands_arrive_through_the_entry_point_group() -> None:
    result = subprocess.run([str(BIN / "stockpipe"), "--help"], capture_output=True, text=True, check=True)
    for command in DEV_COMMANDS:
        assert f" {command} " in result.stdout


def test_the_product_wheel_holds_no_dev_package(tmp_path: Path) -> None:
    build = [uv_binary(), "build", "--wheel", "--out-dir", str(tmp_path), str(ROOT)]
    subprocess.run(build, capture_output=True, text=True, check=True)
    (wheel,) = tmp_path.glob("stockpipe-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(name.startswith("stockpipe/cli.py") for name in names)
    assert not [name for name in names if name.startswith("stockpipe_dev/") or "/bench/" in name]
