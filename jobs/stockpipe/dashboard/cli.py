"""`stockpipe dashboard`: validate the settings, then serve the Streamlit app (health at /_stcore/health)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import typer

APP = Path(__file__).with_name("app.py")


def streamlit_argv(port: int, address: str) -> list[str]:
    """The command that serves the app: headless, no usage statistics, no file watcher (nothing to reload)."""
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.port", str(port),
        "--server.address", address,
        "--server.headless", "true",
        "--server.fileWatcherType", "none",
        "--server.runOnSave", "false",
        "--browser.gatherUsageStats", "false",
        "--global.developmentMode", "false",
        "--client.toolbarMode", "viewer",
        "--theme.base", "light",
    ]  # fmt: skip


def streamlit_env() -> dict[str, str]:
    """The environment for a read-only root filesystem: Streamlit and Python write only under HOME."""
    env = dict(os.environ)
    home = Path(env.get("HOME") or tempfile.gettempdir())
    try:
        tempfile.gettempdir()
    except FileNotFoundError:  # no writable temporary directory at all: use one under HOME
        tmp = home / ".cache" / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        env["TMPDIR"] = str(tmp)
    env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    env.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")
    return env


def check_settings() -> None:
    """Fail at start, with the field named, rather than in the browser."""
    from stockpipe.dashboard.settings import DashboardSettings
    from stockpipe.settings import ConfigError, load_settings

    try:
        load_settings(DashboardSettings)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def dashboard_command(
    port: int = typer.Option(8501, min=1, max=65535, help="Port to serve on"),
    address: str = typer.Option("127.0.0.1", help="Address to bind (0.0.0.0 in a container)"),
) -> None:
    """Serve the dashboard (Streamlit) over the warehouse of STOCKPIPE_WAREHOUSE__* (DuckDB or Snowflake)."""
    check_settings()
    argv = streamlit_argv(port, address)
    typer.echo(f"stockpipe dashboard: http://{address}:{port}/ (health: /_stcore/health)", err=True)
    sys.stdout.flush()
    os.execve(argv[0], argv, streamlit_env())  # noqa: S606 - the server replaces this process (signals reach it)
