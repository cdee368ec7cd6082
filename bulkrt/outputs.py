"""Whether a command may write its output file: never over a file it reads, a ledger or an
accounts file (not even with ``--force``), and over any other existing file only with ``--force``.

Every command that writes a file (`rollback --out`, `report --html`, `expand --out`,
`sandbox --accounts-out`) asks `refusal` first and stops with exit 2 on its answer, so an
operator's mistake in a path costs a message, never a file.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> ledger = d / "ledger.jsonl"
>>> _ = ledger.write_text('{"schema":1,"ts":"t","run":"r","key":"k"}\\n')
>>> refusal(ledger, force=True, inputs={})
'is a bulkrt ledger; bulkrt never writes over one, even with --force: name another file'
>>> refusal(ledger, force=False, inputs={"the ledger it reads": ledger})
'that is the ledger it reads; name another file'
>>> refusal(d / "new.csv", force=False, inputs={"the ledger it reads": ledger}) is None
True
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

__all__ = [
    "ACCOUNTS_FILE",
    "JOB",
    "LEDGER",
    "kind_of",
    "ledger_refusal",
    "not_a_ledger",
    "refusal",
]

#: what `kind_of` calls a ledger and an accounts file
LEDGER = "a bulkrt ledger"
ACCOUNTS_FILE = "a bulkrt accounts file"
JOB = "a bulkrt job file"

#: how much of an existing file is read to tell what it is, and how many of its lines
_SNIFF = 64 * 1024
_SNIFF_LINES = 20


def kind_of(path: Path) -> str | None:
    """What bulkrt file ``path`` holds, from its first bytes: `LEDGER`, `ACCOUNTS_FILE`, `JOB`
    (a CSV job's header), or None (anything else, or unreadable)."""
    try:
        with path.open("rb") as stream:
            head = stream.read(_SNIFF)
    except OSError:
        return None
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    lines = [line for line in text.splitlines()[:_SNIFF_LINES] if line.strip()]
    first = lines[0] if lines else ""
    # any of the first lines: a crash may have torn a ledger's first line
    if any(_is_ledger_line(line) for line in lines):
        return LEDGER
    header = first.lower()
    if "account" in header and "tweet_id" in header:
        return JOB
    if first.lstrip().startswith("{") and '"accounts"' in text:
        try:
            document = json.loads(head.decode("utf-8"))
        except ValueError:
            # Cut short by the sniff, or not JSON: the key at the top is a strong enough sign.
            return ACCOUNTS_FILE if text.lstrip().startswith('{"accounts"') else None
        if isinstance(document, dict) and isinstance(document.get("accounts"), dict):
            return ACCOUNTS_FILE
    return None


def _is_ledger_line(line: str) -> bool:
    return line.startswith('{"schema":') and '"run":' in line and '"key":' in line


def not_a_ledger(path: Path) -> str | None:
    """Why ``path``, given as a ledger to read, is not one, or None (a ledger, an empty or a
    missing file: the reader says what is wrong with those).

    >>> import tempfile, pathlib
    >>> job = pathlib.Path(tempfile.mkdtemp()) / "spring.csv"
    >>> _ = job.write_text("account,tweet_id,action\\nacme,20,retweet\\n")
    >>> not_a_ledger(job)
    'is a bulkrt job file, not a ledger: give the --ledger file of the run'
    """
    try:
        if not path.is_file() or path.stat().st_size == 0:
            return None
    except OSError:
        return None
    kind = kind_of(path)
    if kind == LEDGER:
        return None
    return f"is {kind or 'not a bulkrt ledger'}, not a ledger: give the --ledger file of the run"


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return a.absolute() == b.absolute()


def refusal(
    out: Path, *, force: bool, inputs: Mapping[str, Path], writes: str | None = None
) -> str | None:
    """Why ``out`` must not be written, or None when it may.

    ``inputs`` names the files the command reads (``{"the ledger it reads": path}``); ``out``
    is never one of them. An existing ledger or accounts file is never replaced (except the kind
    the command itself ``writes``, with ``force``: `sandbox --accounts-out` rewrites its own
    accounts file); any other existing file only with ``force``.
    """
    for what, path in inputs.items():
        if _same_file(out, path):
            return f"that is {what}; name another file"
    if out.is_dir():
        return "is a directory; name a file"
    if not out.exists():
        return None
    kind = kind_of(out)
    if kind in (LEDGER, ACCOUNTS_FILE) and kind != writes:
        return f"is {kind}; bulkrt never writes over one, even with --force: name another file"
    if not force:
        return "exists; --force replaces it"
    return None


def ledger_refusal(ledger: Path, *, inputs: Mapping[str, Path]) -> str | None:
    """Why ``ledger`` must not be appended to, or None: it is one of the ``inputs`` (a job, the
    accounts file), or an existing, non-empty file that is not a bulkrt ledger."""
    for what, path in inputs.items():
        if _same_file(ledger, path):
            return f"that is {what}; name the campaign's ledger (a .jsonl file of its own)"
    if ledger.is_dir():
        return "is a directory; name a file"
    try:
        empty = ledger.stat().st_size == 0
    except OSError:
        return None  # missing: the run creates it (or says why it cannot)
    kind = kind_of(ledger)
    if empty or kind == LEDGER:
        return None
    return (
        f"exists and is {kind or 'not a bulkrt ledger'}: bulkrt appends only to its own "
        f"ledgers; name a new file or the campaign's ledger"
    )
