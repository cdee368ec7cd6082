"""Options that several commands share, so they read and behave the same everywhere."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from bulkrt.errors import Problem
from bulkrt.jobs.loader import JobFormat

__all__ = [
    "JSON_PROBLEMS",
    "Seconds",
    "accounts_option",
    "campaign_option",
    "format_option",
    "jobs_argument",
    "problems_document",
]


class Seconds(click.FloatRange):
    """A finite number in a range: ``nan`` and ``inf`` are refused (exit 2, naming the option),
    as a plain `click.FloatRange` would accept them.

    >>> Seconds(min=0, min_open=True).convert("nan", None, None)
    Traceback (most recent call last):
    ...
    click.exceptions.BadParameter: 'nan' is not a finite number.
    """

    name = "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


#: ``JOB...``: one or more job files, ``-`` for standard input
jobs_argument = click.argument("jobs", nargs=-1, required=True, metavar="JOB...")

#: ``--accounts FILE``, passed as ``accounts_path``
accounts_option = click.option(
    "--accounts",
    "accounts_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The accounts file (JSON) naming every account of the jobs.",
)

#: ``--format csv|jsonl``, passed as ``fmt``
format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice([f.value for f in JobFormat]),
    help="Format of the job files (default: from the name; required for '-').",
)

#: ``--campaign NAME``
campaign_option = click.option(
    "--campaign", help="Campaign of rows that name none (default: the job file's name)."
)


#: problems listed in ``--json`` output (all are counted, and all printed on stderr)
JSON_PROBLEMS = 1000


def problems_document(count: int, problems: Sequence[Problem]) -> dict[str, object]:
    """What ``--json`` prints when the input has problems (`validate`, `run`): ``ok`` false,
    their ``count``, and the first `JSON_PROBLEMS` of them (file, line, field, message)."""
    return {
        "ok": False,
        "problems": count,
        "first": [asdict(p) for p in problems[:JSON_PROBLEMS]],
    }
