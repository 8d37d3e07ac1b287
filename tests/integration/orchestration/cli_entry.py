"""`stockpipe` for these tests: the real entry point, plus the sub-apps jobs/stockpipe/cli.py does not
wire yet (`load`, `watch`). Once cli.py wires them this adds nothing and is the plain entry point."""

from __future__ import annotations

from stockpipe.cli import app

_wired = {group.name for group in app.registered_groups}
if "history" not in _wired:
    from stockpipe.batch.cli import history_app

    app.add_typer(history_app, name="history")
if "load" not in _wired:
    from stockpipe.warehouse.cli import load_app

    app.add_typer(load_app, name="load")
if "watch" not in _wired:
    from stockpipe.orchestration.cli import watch_app

    app.add_typer(watch_app, name="watch")

if __name__ == "__main__":
    app()
