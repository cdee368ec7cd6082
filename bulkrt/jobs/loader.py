"""Job files as `run` and `validate` use them: open, check every row, then stream the items.

Reading is done in passes over the files, each in memory that does not grow with the rows
(beyond the fixed 16 MB bitmap of `bulkrt.jobs.keys.RepeatFinder` and the few rows that may repeat):

1. `check_jobs` reads every row, reports every problem (not just the first), counts the items
   per account and action, and notes which row identities may repeat. When some rows have an
   ``id`` and some may repeat, it reads the files once more to find duplicate ``id`` values,
   which are input errors. A resume plans itself on this pass (``on_row``).
2. `read_items` reads them again and yields each `Item`, with its key, in file order.

Standard input (``-``) cannot be read twice, so `open_jobs` first copies it to a temporary file.

Usage::

    with open_jobs(["jobs.csv"], fmt=None, campaign=None) as files:
        check = check_jobs(files, accounts)          # raises JobInputError listing every problem
        for item in read_items(files, accounts, check):
            ...
"""

from __future__ import annotations

import shutil
import stat
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Container, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import structlog

from bulkrt.core.items import Action, Item
from bulkrt.errors import JobInputError, Problem
from bulkrt.jobs.campaign import rollback_retweet
from bulkrt.jobs.job_files import (
    JOURNAL_GIVEN_AS_JOB,
    SUFFIXES,
    JobFile,
    JobFormat,
    RawRow,
    WarningSink,
    format_of,
    is_journal,
    read_raw_rows,
)
from bulkrt.jobs.keys import KeyCounter, RepeatFinder, item_key
from bulkrt.jobs.rows import Row, check_row, first_warnings

__all__ = ["STDIN", "JobCheck", "JobFile", "JobFormat", "check_jobs", "open_jobs", "read_items"]

#: the job path that means standard input
STDIN = "-"
#: how standard input is named in messages
_STDIN_NAME = "<stdin>"
#: how many problems `check_jobs` keeps in the error it raises (all are passed to ``on_problem``)
_KEEP_PROBLEMS = 1000

_log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class JobCheck:
    """What `check_jobs` learnt about valid job files; `read_items` needs it to number rows."""

    #: how many items the files hold
    items: int
    #: items per (account, action)
    counts: Mapping[tuple[str, Action], int]
    #: hashes of row identities that occur more than once (see `bulkrt.jobs.keys`)
    repeated: frozenset[int] = field(repr=False)


@contextmanager
def open_jobs(
    paths: Sequence[str],
    *,
    fmt: JobFormat | None,
    campaign: str | None,
    stdin: BinaryIO | None = None,
) -> Iterator[list[JobFile]]:
    """Resolve job paths into `JobFile` records, spooling standard input to a temporary file.

    ``fmt`` overrides the format the name suggests; ``campaign`` overrides each file's default
    campaign (its name without extensions). Raises `JobInputError` naming every path that is
    missing, given twice, or of unknown format.
    """
    problems: list[Problem] = []
    files: list[JobFile] = []
    seen: set[str] = set()
    seen_files: set[tuple[int, int]] = set()
    with tempfile.TemporaryDirectory(prefix="bulkrt-stdin-") as spool:
        for path in paths:
            name = _STDIN_NAME if path == STDIN else path
            if path in seen:
                problems.append(Problem(name, None, "file", "given more than once"))
                continue
            seen.add(path)
            file_fmt = fmt or format_of(path)
            if file_fmt is None:
                unknown = "unknown format; use --format csv|jsonl"
                if path != STDIN and is_journal(Path(path)):
                    unknown = JOURNAL_GIVEN_AS_JOB
                problems.append(Problem(name, None, "file", unknown))
                continue
            if path == STDIN:
                target = Path(spool) / "stdin"
                with target.open("wb") as out:
                    shutil.copyfileobj(stdin or sys.stdin.buffer, out)
            elif _is_stream(Path(path)):
                # A FIFO or /dev/stdin can be read once only: spool it like standard input.
                target = Path(spool) / f"stream-{len(files)}"
                with Path(path).open("rb") as source, target.open("wb") as out:
                    shutil.copyfileobj(source, out)
            elif not Path(path).is_file():
                problems.append(Problem(name, None, "file", "no such file"))
                continue
            else:
                target = Path(path)
                if not _first_time(target, seen_files):
                    problems.append(
                        Problem(name, None, "file", "given more than once (under another name)")
                    )
                    continue
            files.append(JobFile(target, name, file_fmt, campaign or _campaign_of(path)))
        if problems:
            raise JobInputError(problems)
        yield files


def _first_time(path: Path, seen: set[tuple[int, int]]) -> bool:
    """Whether ``path`` is a file not seen yet (by device and inode: links and spellings alike)."""
    info = path.stat()
    identity = (info.st_dev, info.st_ino)
    if identity in seen:
        return False
    seen.add(identity)
    return True


def check_jobs(
    files: Sequence[JobFile],
    accounts: Container[str],
    *,
    on_problem: Callable[[Problem], None] | None = None,
    on_warning: WarningSink | None = None,
    on_row: Callable[[Row], None] | None = None,
) -> JobCheck:
    """Read every row of ``files`` and return what `read_items` needs, or raise `JobInputError`.

    Every problem, in file order, goes to ``on_problem`` as soon as it is found (the error keeps
    the first 1000); warnings (unknown columns) go to ``on_warning``, by default to the log.
    Each valid row, in file order, goes to ``on_row`` (a resume's scan rides on this pass).
    """
    problems: list[Problem] = []
    total = 0

    def report(problem: Problem) -> None:
        nonlocal total
        total += 1
        if len(problems) < _KEEP_PROBLEMS:
            problems.append(problem)
        if on_problem is not None:
            on_problem(problem)

    warn = on_warning or _log_warning
    counts: Counter[tuple[str, Action]] = Counter()
    finder = RepeatFinder()
    with_id = 0
    for entry in _rows(files, accounts, warn):
        if isinstance(entry, Row):
            counts[entry.account, entry.action] += 1
            finder.add(entry.identity)
            with_id += entry.id is not None
            if on_row is not None:
                on_row(entry)
        else:
            for problem in entry:
                report(problem)
    repeated = finder.repeated()
    if with_id and repeated:
        for problem in _duplicate_ids(files, accounts, repeated):
            report(problem)
    if total:
        raise JobInputError(problems, total)
    return JobCheck(items=counts.total(), counts=dict(counts), repeated=repeated)


def read_items(
    files: Sequence[JobFile], accounts: Container[str], check: JobCheck
) -> Iterator[Item]:
    """Yield the items of ``files`` in file order, each with its key (README "Job files").

    ``check`` must come from `check_jobs` on the same files in this process. Raises
    `JobInputError` if a file changed since and now holds a bad row.
    """
    counter = KeyCounter(check.repeated)
    for entry in _rows(files, accounts, _ignore_warning):
        if not isinstance(entry, Row):
            raise JobInputError(entry)
        yield Item(
            key=item_key(entry, counter.number(entry.identity)),
            campaign=entry.campaign,
            account=entry.account,
            tweet_id=entry.tweet_id,
            action=entry.action,
            source=entry.source,
            line=entry.line,
        )


def _rows(
    files: Sequence[JobFile], accounts: Container[str], warn: WarningSink
) -> Iterator[Row | list[Problem]]:
    for job in files:
        rounded = first_warnings(warn)  # a rounded-looking ID is warned about, a few per file
        for raw in read_raw_rows(job, warn):
            if isinstance(raw, Problem):
                yield [raw]
            else:
                yield _check(job, raw, accounts, rounded)
        rounded.finish()


def _check(
    job: JobFile, raw: RawRow, accounts: Container[str], warn: WarningSink
) -> Row | list[Problem]:
    row = check_row(
        raw.fields,
        source=job.name,
        line=raw.line,
        accounts=accounts,
        default_campaign=job.campaign,
        warn=warn,
    )
    if isinstance(row, Row):
        named = raw.fields.get("campaign")
        problem = rollback_retweet(row, named=isinstance(named, str) and bool(named.strip()))
        if problem is not None:
            return [problem]
    return row


def _duplicate_ids(
    files: Sequence[JobFile], accounts: Container[str], repeated: frozenset[int]
) -> Iterator[Problem]:
    first_seen: dict[str, str] = {}
    for entry in _rows(files, accounts, _ignore_warning):
        if isinstance(entry, Row) and entry.id is not None and hash(entry.identity) in repeated:
            where = first_seen.setdefault(entry.id, f"{entry.source}:{entry.line}")
            if where != f"{entry.source}:{entry.line}":
                yield Problem(
                    entry.source, entry.line, "id", f"duplicate id {entry.id!r} (first at {where})"
                )


def _is_stream(path: Path) -> bool:
    """Whether ``path`` is readable once only (a FIFO, a character device such as a pipe
    behind /dev/stdin), rather than a regular file or nothing."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode)


def _campaign_of(path: str) -> str:
    if path == STDIN:
        return "stdin"
    name = Path(path).name.removesuffix(".gz")
    for suffix in SUFFIXES:
        name = name.removesuffix(suffix)
    return name


def _log_warning(problem: Problem) -> None:
    _log.warning("job_file_warning", where=str(problem))


def _ignore_warning(problem: Problem) -> None:
    """Warnings were reported by `check_jobs` already."""
