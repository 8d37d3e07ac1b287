"""Run one pipeline job (`stockpipe ...` argv) as a child process and keep its result.

The jobs print logs on stderr and, when they have one, a JSON summary as their last stdout line.
Both run modes use this: embedded tasks call `run_job` in the Airflow worker; pods whose result
Airflow needs run `python -m stockpipe.orchestration.jobrun --xcom-file /airflow/xcom/return.json --
stockpipe load bronze`, which writes that summary where KubernetesPodOperator's XCom sidecar reads it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from stockpipe.logs import redact

log = logging.getLogger("stockpipe.orchestration.job")

XCOM_FILE = "/airflow/xcom/return.json"  # where KubernetesPodOperator's sidecar looks


class JobFailed(RuntimeError):
    def __init__(self, argv: Sequence[str], returncode: int, last_error: str | None) -> None:
        self.returncode = returncode
        self.last_error = last_error
        detail = f": {last_error}" if last_error else ""
        super().__init__(f"{' '.join(argv)} exited with {returncode}{detail}")


@dataclass(frozen=True)
class JobResult:
    returncode: int
    summary: Any  # the last stdout line parsed as JSON, or None
    last_error: str | None  # the last stderr line starting with "error:", the job's one-line reason


def last_json_line(lines: Sequence[str]) -> Any:
    """The last non-empty line if it is JSON, else None (dbt and others print prose)."""
    for line in reversed(lines):
        if line.strip():
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


def _pump(stream: IO[str], sink: Callable[[str], None]) -> None:
    for raw in stream:
        sink(raw.rstrip("\n"))


def run_job(
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    timeout_s: float | None = None,
    echo: Callable[[str, str], None] | None = None,
) -> JobResult:
    """Run argv to the end; every output line goes to `echo(stream, line)` (default: this module's log)."""
    stdout_lines: list[str] = []
    last_error: list[str] = []

    def out(line: str) -> None:
        stdout_lines.append(line)
        (echo or _log_line)("stdout", line)

    def err(line: str) -> None:
        if line.startswith("error:"):
            last_error[:] = [line.removeprefix("error:").strip()]
        (echo or _log_line)("stderr", line)

    proc = subprocess.Popen(
        list(argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
        env=dict(env) if env is not None else None,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    # Two readers so that neither pipe fills up and blocks the job.
    readers = [
        threading.Thread(target=_pump, args=(proc.stdout, out), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, err), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        returncode = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    except BaseException:
        # Airflow stops a task by raising in it (timeout, kill): the job must not outlive its task.
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise
    for reader in readers:
        reader.join(timeout=10)
    return JobResult(returncode, last_json_line(stdout_lines), last_error[0] if last_error else None)


def _log_line(stream: str, line: str) -> None:
    log.info("%s", redact(line)) if stream == "stdout" else log.info("| %s", redact(line))


def main(args: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if args is None else args)
    parser = argparse.ArgumentParser(
        prog="python -m stockpipe.orchestration.jobrun", usage="%(prog)s [--xcom-file PATH] -- stockpipe ..."
    )
    parser.add_argument("--xcom-file", type=Path, default=Path(XCOM_FILE))
    if "--" not in args:
        parser.error("give the job after --")
    split = args.index("--")
    ns = parser.parse_args(args[:split])
    argv = args[split + 1 :]
    if not argv:
        parser.error("no job to run after --")

    def echo(stream: str, line: str) -> None:
        print(line, file=sys.stdout if stream == "stdout" else sys.stderr, flush=True)

    result = run_job(argv, env=os.environ, echo=echo)
    if result.returncode == 0:
        ns.xcom_file.parent.mkdir(parents=True, exist_ok=True)
        # Always valid JSON: the sidecar fails the task when the file is missing or unparsable.
        ns.xcom_file.write_text(json.dumps(result.summary), encoding="utf-8")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
