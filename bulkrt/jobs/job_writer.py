"""Writing a job file: `Row` records as CSV or JSONL (maybe gzip), replacing the file atomically.

The format follows the name (`bulkrt.jobs.job_files.SUFFIXES`), as when reading. The columns
are ``campaign``, ``account``, ``tweet_id``, ``action``: rows bulkrt writes (a campaign's cross
product, a rollback's undo job) have no ``id``, so their keys are derived from these four values
and read back as the same rows.

>>> import tempfile
>>> from bulkrt.core.items import Action
>>> path = Path(tempfile.mkdtemp()) / "spring.csv"
>>> write_job(path, [Row("spring", "acme", "20", Action.RETWEET)])
1
>>> path.read_text()
'campaign,account,tweet_id,action\\nspring,acme,20,retweet\\n'
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path

from bulkrt.atomic import replacing
from bulkrt.jobs.job_files import JobFormat, format_of
from bulkrt.jobs.rows import Row

__all__ = ["COLUMNS", "write_job"]

#: the columns (CSV) and keys (JSONL) of a written row, in order
COLUMNS = ("campaign", "account", "tweet_id", "action")


def write_job(path: Path, rows: Iterable[Row], *, ids: bool = False) -> int:
    """Write ``rows`` as CSV or JSONL by the name (``.gz``: compressed), replacing ``path``
    atomically; returns the rows written. With ``ids``, an ``id`` column follows (empty, or
    no key in JSONL, for a row without one). Raise ValueError for a name of neither kind."""
    fmt = format_of(path.name)
    if fmt is None:
        raise ValueError(f"{path}: name the job .csv or .jsonl (optionally .gz)")
    count = 0
    with replacing(path, compress=path.name.endswith(".gz")) as stream:
        if fmt is JobFormat.CSV:
            writer = csv.writer(stream, lineterminator="\n")
            writer.writerow((*COLUMNS, "id") if ids else COLUMNS)
            for row in rows:
                writer.writerow((*_values(row), row.id or "") if ids else _values(row))
                count += 1
        else:
            for row in rows:
                fields = dict(zip(COLUMNS, _values(row), strict=True))
                if ids and row.id is not None:
                    fields["id"] = row.id
                stream.write(json.dumps(fields) + "\n")
                count += 1
    return count


def _values(row: Row) -> tuple[str, str, str, str]:
    return (row.campaign, row.account, row.tweet_id, row.action.value)
