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

__all__ = ["ACCOUNTS_FILE", "LEDGER", "kind_of", "ledger_refusal", "refusal"]

#: what `kind_of` calls a ledger and an accounts file
LEDGER = "a bulkrt ledger"
ACCOUNTS_FILE = "a bulkrt accounts file"

#: how much of an existing file is read to tell what it is
_SNIFF = 64 * 1024


def kind_of(path: Path) -> str | None:
    """What bulkrt file ``path`` holds, from its first bytes: ``"a bulkrt ledger"``,
    ``"a bulkrt accounts file"``, or None (anything else, or unreadable)."""
    try:
        with path.open("rb") as stream:
            head = stream.read(_SNIFF)
    except OSError:
        return None
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    first = next((line for line in text.splitlines() if line.strip()), "")
    if first.startswith('{"schema":') and '"run":' in first and '"key":' in first:
        return LEDGER
    if first.lstrip().startswith("{") and '"accounts"' in text:
        try:
            document = json.loads(head.decode("utf-8"))
        except ValueError:
            # Cut short by the sniff, or not JSON: the key at the top is a strong enough sign.
            return ACCOUNTS_FILE if text.lstrip().startswith('{"accounts"') else None
        if isinstance(document, dict) and isinstance(document.get("accounts"), dict):
            return ACCOUNTS_FILE
    return None


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
    if kind is not None and kind != writes:
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
