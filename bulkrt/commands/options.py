"""Options that several commands share, so they read and behave the same everywhere."""

from __future__ import annotations

from pathlib import Path

import click

from bulkrt.loader import JobFormat

__all__ = ["accounts_option", "campaign_option", "format_option", "jobs_argument"]

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
