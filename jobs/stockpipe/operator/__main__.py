"""`python -m stockpipe.operator`: the operator without the stockpipe CLI (same options)."""

import typer

from stockpipe.operator.cli import operator_command

if __name__ == "__main__":
    typer.run(operator_command)
