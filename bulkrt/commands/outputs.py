"""Whether a command may write its output file: never over a file it reads, a ledger, a
ledger's journal (``<ledger>.sent``), a lock (``<ledger>.lock``, ``<accounts>.lock``) or an
operator's accounts file, not even with ``--force``. An existing bulkrt file is replaced only by
the command that writes that kind, with ``--force``: `expand --out` a job file, `rollback --out`
an earlier undo job (every row an ``undo``; never a job holding retweet rows), `sandbox
--accounts-out` an accounts file a sandbox wrote (marked ``"written_by": "bulkrt sandbox"``).
`report --html` replaces no bulkrt file. Any other existing file is replaced only with ``--force``;
nothing in /dev, /proc or /sys (nor a link leading there, as ``/dev/stdout`` does) ever is. A
link to a file is written through (`bulkrt.atomic.replacing`): what is checked is what is written.

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

import csv
import json
import os
import shlex
import stat
import zlib
from collections.abc import Mapping
from pathlib import Path

from bulkrt.core.items import Action
from bulkrt.errors import Problem
from bulkrt.jobs.job_files import (
    COMPRESSORS,
    JobFile,
    JobFormat,
    format_of,
    gzip_start,
    read_raw_rows,
)

__all__ = [
    "ACCOUNTS_FILE",
    "GZIPPED_JOURNAL",
    "GZIPPED_LEDGER",
    "JOB",
    "JOURNAL",
    "LEDGER",
    "LOCK",
    "SANDBOX_ACCOUNTS",
    "SANDBOX_MARK",
    "UNDO_JOB",
    "archived_beside",
    "kind_of",
    "ledger_refusal",
    "not_a_ledger",
    "not_regular",
    "refusal",
    "system_place",
]

#: what `kind_of` calls a ledger and an accounts file
LEDGER = "a bulkrt ledger"
ACCOUNTS_FILE = "a bulkrt accounts file"
JOB = "a bulkrt job file"
JOURNAL = "a ledger's journal (<ledger>.sent)"
LOCK = "the lock of a ledger or accounts file"
#: an accounts file `bulkrt sandbox --accounts-out` wrote (it carries `SANDBOX_MARK`)
SANDBOX_ACCOUNTS = "an accounts file a bulkrt sandbox wrote"
#: a job file whose every row is an ``undo`` (what `bulkrt rollback --out` writes)
UNDO_JOB = "an undo job file"
#: a ledger compressed with gzip (an archived ledger): job files may be gzipped, a ledger is
#: read and appended to only as plain text, so a run would not see what it finished
GZIPPED_LEDGER = "a gzip-compressed bulkrt ledger"
#: a ledger's journal compressed with gzip (an archived journal: the record of who made the
#: campaign's retweets), never replaced
GZIPPED_JOURNAL = "a gzip-compressed ledger's journal (<ledger>.sent)"

#: the top-level key and value `bulkrt sandbox` writes into its accounts files; the accounts
#: loader ignores top-level keys other than ``accounts``, and a token write-back keeps them
SANDBOX_MARK = ("written_by", "bulkrt sandbox")

#: the kinds of file each kind a command ``writes`` may replace (with ``--force``)
_REPLACEABLE = {
    JOB: frozenset({JOB, UNDO_JOB}),
    UNDO_JOB: frozenset({UNDO_JOB}),
    SANDBOX_ACCOUNTS: frozenset({SANDBOX_ACCOUNTS}),
}

#: how much of an existing file is read to tell what it is, and how many of its lines
_SNIFF = 64 * 1024
_SNIFF_LINES = 20


def kind_of(path: Path) -> str | None:
    """What bulkrt file ``path`` holds: `LEDGER`, `JOURNAL`, `LOCK` (by its name beside a ledger
    or accounts file), `ACCOUNTS_FILE`, `SANDBOX_ACCOUNTS`, `JOB` (a CSV header or a JSONL row
    naming account and tweet_id, maybe gzipped), `UNDO_JOB`, or None (anything else, or
    unreadable)."""
    owners = {".sent": (LEDGER,), ".lock": (LEDGER, ACCOUNTS_FILE)}
    for suffix, by_name in ((".sent", JOURNAL), (".lock", LOCK)):
        if not path.name.endswith(suffix) or path.name == suffix:
            continue
        owner = path.with_name(path.name.removesuffix(suffix))
        if owner.is_file() and _sniff_kind(owner) in owners[suffix]:
            return by_name
    kind = _sniff_kind(path)
    if kind == JOB and _all_undo(path):
        return UNDO_JOB
    if kind == ACCOUNTS_FILE and _sandbox_wrote(path):
        return SANDBOX_ACCOUNTS
    return kind


def _sniff_kind(path: Path) -> str | None:
    try:
        with path.open("rb") as stream:
            head = stream.read(_SNIFF)
    except OSError:
        return None
    inflated = gzip_start(head, _SNIFF)
    kind = _kind_of_text(head if inflated is None else inflated)
    if inflated is None or kind == JOB:
        return kind
    # Only job files are read through gzip; anything else compressed is no bulkrt file of its
    # kind, and a gzipped ledger or journal is named so that it is neither read nor replaced.
    return {LEDGER: GZIPPED_LEDGER, JOURNAL: GZIPPED_JOURNAL}.get(kind or "")


def _kind_of_text(head: bytes) -> str | None:
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    lines = [line for line in text.splitlines()[:_SNIFF_LINES] if line.strip()]
    first = lines[0] if lines else ""
    # any of the first lines: a crash may have torn a ledger's first line
    if any(_is_ledger_line(line) for line in lines):
        return LEDGER
    if any(_is_journal_line(line) for line in lines):
        return JOURNAL
    header = first.lower()
    if "account" in header and "tweet_id" in header:
        if not header.lstrip().startswith("{"):
            return JOB
        try:
            row = json.loads(first)
        except ValueError:
            row = None
        if isinstance(row, dict) and "account" in row and "tweet_id" in row:
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


def _is_journal_line(line: str) -> bool:
    return line.startswith('{"e":') and '"key":' in line


def _all_undo(path: Path) -> bool:
    """Whether every row of the job ``path`` is an ``undo`` (read whole; any problem: no)."""
    fmt = format_of(path.name) or JobFormat.CSV
    job = JobFile(path, str(path), fmt, "")
    try:
        for row in read_raw_rows(job, lambda problem: None):
            if isinstance(row, Problem):
                return False
            action = row.fields.get("action")
            if not isinstance(action, str) or action.strip().lower() != Action.UNDO:
                return False
    except (OSError, EOFError, zlib.error, csv.Error):
        return False
    return True


def _sandbox_wrote(path: Path) -> bool:
    """Whether the accounts file ``path`` carries `SANDBOX_MARK` (read whole)."""
    try:
        document = json.loads(path.read_bytes().decode("utf-8-sig"))
    except (OSError, ValueError):
        return False
    key, value = SANDBOX_MARK
    return isinstance(document, dict) and document.get(key) == value


def not_regular(path: Path) -> str | None:
    """What ``path`` is when it exists and is neither a regular file nor a directory (a
    character device such as /dev/null, a FIFO, a socket, a block device), else None: such a
    file is never read or written as a bulkrt file (a FIFO would block the command, /dev/null
    would swallow a ledger).

    >>> not_regular(Path("/dev/null"))
    'a character device'
    """
    try:
        mode = path.stat().st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "not a regular file"


def not_a_ledger(path: Path) -> str | None:
    """Why ``path``, given as a ledger to read, is not one, or None (a ledger, an empty or a
    missing file: the reader says what is wrong with those).

    >>> import tempfile, pathlib
    >>> job = pathlib.Path(tempfile.mkdtemp()) / "spring.csv"
    >>> _ = job.write_text("account,tweet_id,action\\nacme,20,retweet\\n")
    >>> not_a_ledger(job)
    'is a bulkrt job file, not a ledger: give the --ledger file of the run'
    """
    special = not_regular(path)
    if special is not None:
        return f"is {special}, not a regular file: {_GIVE_LEDGER}"
    try:
        if not path.exists():
            return _archived_refusal(path, None)
        if not path.is_file():
            return None
        if path.stat().st_size == 0:
            named = _named_as(path)  # an empty lock or journal is no empty ledger
            if named is not None:
                return f"is {named}, not a ledger: {_GIVE_LEDGER}"
            return _archived_refusal(path, True)
    except OSError:
        return None
    kind = kind_of(path)
    if kind == LEDGER:
        return None
    if kind == GZIPPED_LEDGER:
        return f"is {kind}: bulkrt reads ledgers only as plain text; {_decompress(path)}"
    if kind is not None:
        return f"is {kind}, not a ledger: {_GIVE_LEDGER}"
    journal = path.with_name(path.name + ".sent")
    if journal.is_file() and _sniff_kind(journal) == JOURNAL:
        return (
            f"is not a bulkrt ledger, yet its journal {journal.name} is beside it: if it is the "
            f"ledger, damaged (a power cut can leave it zero-filled), empty it (`: > FILE`) "
            f"and `rollback` reads the journal, and the same `run` resends and settles what "
            f"is left; else {_GIVE_LEDGER}"
        )
    return f"is not a bulkrt ledger: {_GIVE_LEDGER}"


_GIVE_LEDGER = "give the --ledger file of the run"


def _decompress(path: Path) -> str:
    """How to turn the gzipped ledger ``path`` into the plain one to give instead."""
    plain = path.name[:-3] if path.name.lower().endswith(".gz") else "ledger.jsonl"
    return f"decompress it first (`gzip -dc {path.name} > {plain}`) and give {plain}"


#: the names compressing a file gives it, and the command that gives the file back (in place)
_COMPRESSED = {c.suffix: c.decompress for c in COMPRESSORS}


def archived_beside(ledger: Path, *, empty: bool = False) -> str | None:
    """What stands beside the missing ``ledger`` that a run must not start a new ledger over,
    with the command that puts it back, or None: the ledger compressed under its own name
    (``gzip L.jsonl L.jsonl.sent`` leaves ``L.jsonl.gz``), or its journal (``L.jsonl.sent``, maybe
    compressed) without it. A new ledger there would send every item again, and the answers
    "already retweeted" to the campaign's own retweets would be recorded as the owners'.
    With ``empty`` (the ledger is there, empty), only what is compressed counts: an empty ledger
    beside its plain journal is what the advice for a lost ledger makes.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("spring.jsonl.gz", "spring.jsonl.sent.gz"):
    ...     _ = (d / name).write_bytes(b"archived")
    >>> print(archived_beside(d / "spring.jsonl").replace(str(d), "DIR"))
    ... # doctest: +NORMALIZE_WHITESPACE
    spring.jsonl.gz is beside it (the ledger, archived?) with its journal
    spring.jsonl.sent.gz: a run on a new ledger would send every item again and take the
    campaign's retweets for the owners'; put them back first (`gzip -d DIR/spring.jsonl.gz
    DIR/spring.jsonl.sent.gz`) and run the same command again
    """
    journal = ledger.with_name(ledger.name + ".sent")
    found = _compressed_beside(ledger)
    archives = [path for path, (rest, _) in found.items() if rest == ""]
    journals = [path for path, (rest, _) in found.items() if rest == ".sent"]
    packed = [*archives, *journals]
    plain = not empty and journal.is_file() and journal.stat().st_size > 0
    if not packed and not plain:
        return None
    unpack = _unpack_command(found)
    ledgers = [path.name for path in packed if path in archives]
    if ledgers:
        with_journal = [path.name for path in packed if path in journals]
        if plain:
            with_journal.append(journal.name)
        also = f" with its journal {' and '.join(with_journal)}" if with_journal else ""
        return (
            f"{' and '.join(ledgers)} is beside it (the ledger, archived?){also}: a run on a new "
            f"ledger would send every item again and take the campaign's retweets for the "
            f"owners'; put them back first (`{unpack}`) and run the same command again"
        )
    named = " and ".join(path.name for path in packed) if packed else journal.name
    if empty:
        return (
            f"its journal {named} is beside it, compressed: the journal says who made the "
            f"campaign's retweets, and a run without it would take them for the owners'; put it "
            f"back first (`{unpack}`) and run the same command again"
        )
    back = f"`{unpack}` puts the journal back; " if packed else ""
    return (
        f"its journal {named} is beside it without the ledger (moved, archived or lost?): the "
        f"journal says who made the campaign's retweets, and a run on a new ledger would send "
        f"every item again; {back}put the ledger back beside it, or if the ledger is lost, "
        f"create it empty (`: > {shlex.quote(str(ledger))}`): the same run then resends what "
        f"is left and the journal settles who made each retweet"
    )


def _compressed_beside(ledger: Path) -> dict[Path, tuple[str, str]]:
    """The files beside ``ledger`` named as it or its journal compressed, each with what its
    name adds to the ledger's before the compressor's suffix (``""`` or ``".sent"``) and that
    suffix as the name spells it. The suffixes match in any case (``L.jsonl.GZ``, as a Windows
    tool or a copy through a case-folding share leaves them): an archive missed for its
    capitals would let a run start a new ledger and send every item again.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("L.jsonl.GZ", "L.jsonl.Sent.xz", "L.jsonl.gz.txt", "l.jsonl.gz"):
    ...     _ = (d / name).write_bytes(b"archived")
    >>> sorted((p.name, found) for p, found in _compressed_beside(d / "L.jsonl").items())
    [('L.jsonl.GZ', ('', '.GZ')), ('L.jsonl.Sent.xz', ('.sent', '.xz'))]
    """
    names = {ledger.name + rest + suffix for rest in ("", ".sent") for suffix in _COMPRESSED}
    try:
        listed = [
            path
            for path in ledger.parent.iterdir()
            if path.name.lower() in {name.lower() for name in names}
        ]
    except OSError:  # a directory that cannot be listed: the names as bulkrt spells them
        listed = [ledger.with_name(name) for name in sorted(names)]
    found: dict[Path, tuple[str, str]] = {}
    for part in ("", ".sent"):  # the ledger first, then its journal
        for suffix in _COMPRESSED:
            for path in sorted(listed):
                rest = path.name[len(ledger.name) :]
                named = path.name.startswith(ledger.name) and rest.lower() == part + suffix
                if named and path.is_file():
                    found[path] = (part, rest[len(part) :])
    return found


def _unpack_command(found: Mapping[Path, tuple[str, str]]) -> str:
    """The command that puts the compressed ``found`` files (`_compressed_beside`) back in
    place, by compressor. A name not spelt as bulkrt and the tool spell it (``.XZ``: ``xz -d``
    and ``bzip2 -d`` refuse or misname it; ``.SENT.gz`` would give back a journal bulkrt does
    not find) is renamed to that spelling first.

    >>> print(_unpack_command({Path("d/L.jsonl.XZ"): ("", ".XZ"),
    ...                        Path("d/L.jsonl.SENT.gz"): (".sent", ".gz")}))
    ... # doctest: +NORMALIZE_WHITESPACE
    mv d/L.jsonl.SENT.gz d/L.jsonl.sent.gz && mv d/L.jsonl.XZ d/L.jsonl.xz
    && gzip -d d/L.jsonl.sent.gz && xz -d d/L.jsonl.xz
    """
    moves: list[str] = []
    unpack: list[str] = []
    for suffix, tool in _COMPRESSED.items():
        paths = [path for path, (_, spelt) in found.items() if spelt.lower() == suffix]
        if not paths:
            continue
        renamed = [
            path.with_name(path.name[: -len(part + spelt)] + part + suffix)
            for path, (part, spelt) in ((path, found[path]) for path in paths)
        ]
        moves += [
            f"mv {shlex.join([str(path), str(new)])}"
            for path, new in zip(paths, renamed, strict=True)
            if path != new
        ]
        unpack.append(f"{tool} {shlex.join(str(path) for path in renamed)}")
    return " && ".join([*moves, *unpack])


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
    is never one of them. An existing bulkrt file (`kind_of`) is replaced only when it is of
    the kind the command ``writes`` (`JOB`: a job or an undo job; `UNDO_JOB`: an undo job only;
    `SANDBOX_ACCOUNTS`: an accounts file a sandbox wrote), and only with ``force``; a ledger,
    journal, lock or operator's accounts file never. Any other existing file only with ``force``.
    """
    for what, path in inputs.items():
        if _same_file(out, path):
            return f"that is {what}; name another file"
    if out.is_dir():
        return "is a directory; name a file"
    special = not_regular(out)
    if special is not None:
        return f"is {special}, not a regular file; bulkrt writes only regular files: name a file"
    system = system_place(out)
    if system is not None:
        return (
            f"is not a file bulkrt may replace: it {system}, where the system's files live, "
            f"even with --force; name a file"
        )
    if not out.exists():
        return None
    kind = kind_of(out)
    if kind is not None and kind not in _REPLACEABLE.get(writes or "", frozenset()):
        if kind == JOB and writes == UNDO_JOB:
            return (
                f"is {kind} holding retweet rows; rollback replaces only an earlier undo job, "
                f"even with --force: name another file"
            )
        if kind in (LEDGER, JOURNAL, GZIPPED_JOURNAL, LOCK, ACCOUNTS_FILE):
            return f"is {kind}; bulkrt never writes over one, even with --force: name another file"
        return f"is {kind}; this command does not replace one, even with --force: name another file"
    if not force:
        return "exists; --force replaces it"
    return None


#: where the system's own files live (devices, a process's descriptors): never written
_SYSTEM_PLACES = (Path("/dev"), Path("/proc"), Path("/sys"))
#: places in those that hold plain files (a memory-backed filesystem for files)
_FILE_PLACES = (Path("/dev/shm"),)
#: how many symbolic links `system_place` follows before it gives up (as the kernel does)
_MAX_LINKS = 40


def system_place(path: Path) -> str | None:
    """How ``path`` leads into /dev, /proc or /sys (named there, or a symbolic link on the way
    to it ends there: ``/dev/stdout`` is ``/proc/self/fd/1``, whatever file that is), or None.
    Such a file is never replaced, even when it reads as a regular file (standard output
    redirected to one): the write would land on a device, on whatever another process's
    descriptor is, or (as root) replace a system link such as ``/dev/stdout`` itself.

    >>> system_place(Path("/dev/stdout"))
    'is in /dev'
    >>> system_place(Path("report.html")) is None, system_place(Path("/dev/shm/r.html")) is None
    (True, True)
    """
    step = Path(os.path.abspath(path))
    for _ in range(_MAX_LINKS):
        # the directories on the way resolved (a link to /proc/self/fd is one), not the name
        step = Path(os.path.realpath(step.parent)) / step.name
        place = next((p for p in _SYSTEM_PLACES if step.is_relative_to(p)), None)
        if place is not None and not any(step.is_relative_to(p) for p in _FILE_PLACES):
            how = "is in" if step == Path(os.path.abspath(path)) else "is a link into"
            return f"{how} {place}"
        try:
            if not step.is_symlink():
                return None
            step = Path(os.path.normpath(step.parent / os.readlink(step)))
        except OSError:
            return None  # unreadable on the way: the write itself says why it fails
    return None


def _named_as(path: Path) -> str | None:
    """What bulkrt file ``path``'s name makes it, whatever it holds (a lock is empty): the
    journal (``.sent``) of the ledger beside it, the lock (``.lock``) of the ledger or accounts
    file beside it, or None (no such name, or nothing beside it)."""
    for suffix, what in ((".sent", "the journal"), (".lock", "the lock")):
        if not path.name.endswith(suffix) or path.name == suffix:
            continue
        owner = path.with_name(path.name.removesuffix(suffix))
        if owner.is_file():
            return f"{what} of {owner.name} ({JOURNAL if suffix == '.sent' else LOCK})"
    return None


def _archived_refusal(ledger: Path, empty: bool | None) -> str | None:
    """Why a missing (``empty`` None) or empty ledger must not be started: the campaign's
    ledger or journal is beside it under another name (archived, or the ledger moved away)."""
    if empty is False:
        return None
    beside = archived_beside(ledger, empty=bool(empty))
    if beside is None:
        return None
    return f"{'is empty' if empty else 'does not exist'}, but {beside}"


def ledger_refusal(ledger: Path, *, inputs: Mapping[str, Path]) -> str | None:
    """Why ``ledger`` must not be appended to, or None: it is one of the ``inputs`` (a job, the
    accounts file), a lock or journal by its name beside the file it serves (even empty), or an
    existing, non-empty file that is not a bulkrt ledger.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "spring.jsonl").write_text('{"schema":1,"ts":"t","run":"r","key":"k"}\\n')
    >>> (d / "spring.jsonl.lock").touch()
    >>> print(ledger_refusal(d / "spring.jsonl.lock", inputs={}))  # doctest: +ELLIPSIS
    is the lock of spring.jsonl (the lock of a ledger or accounts file), not a ledger: ...
    """
    for what, path in inputs.items():
        if _same_file(ledger, path):
            return f"that is {what}; name the campaign's ledger (a .jsonl file of its own)"
    if ledger.is_dir():
        return "is a directory; name a file"
    special = not_regular(ledger)
    if special is not None:
        return (
            f"is {special}, not a regular file: a ledger must keep what it is given; name the "
            f"campaign's ledger (a .jsonl file of its own)"
        )
    named = _named_as(ledger)
    if named is not None:
        return f"is {named}, not a ledger: bulkrt never appends to one; name the campaign's ledger"
    try:
        empty: bool | None = ledger.stat().st_size == 0
    except OSError:
        empty = None  # missing: the run creates it (or says why it cannot)
    archived = _archived_refusal(ledger, empty)
    if archived is not None:
        return archived
    packed = next((sfx for sfx in _COMPRESSED if ledger.name.lower().endswith(sfx)), None)
    if packed is not None and empty is not False:
        # a new ledger under a compressed name would be plain text all the same: `zcat` and
        # archive scripts keyed on the name would fail on it (a plain one of old resumes)
        plain = ledger.name[: -len(packed)]
        return (
            f"is a new ledger named as compressed ({ledger.name[-len(packed) :]}): a ledger is "
            f"plain text, appended "
            f"to line by line; name it {plain if plain.endswith('.jsonl') else plain + '.jsonl'}"
        )
    if empty is None:
        return None
    kind = kind_of(ledger)
    if empty or kind == LEDGER:
        # Loaded here: `bulkrt sandbox`, which asks `refusal`, loads no ledger module.
        from bulkrt.ledger.reader import unreadable_journal

        real = ledger.resolve()  # the journal beside the file the ledger's name resolves to
        journal = real.with_name(real.name + ".sent")
        unreadable = unreadable_journal(journal)
        return None if unreadable is None else f"its journal {journal} {unreadable}"
    if kind == GZIPPED_LEDGER:
        return (
            f"is {kind}: bulkrt appends only to a plain ledger, and could not see what this one "
            f"finished (every item would be sent again); {_decompress(ledger)}"
        )
    return (
        f"exists and is {kind or 'not a bulkrt ledger'}: bulkrt appends only to its own "
        f"ledgers; name a new file or the campaign's ledger"
    )
