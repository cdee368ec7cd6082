"""The accounts file on disk: reading its JSON document, and keeping OAuth 2.0 tokens in it.

`bulkrt.shell.accounts` checks the document and builds the credentials. `bulkrt.shell.file_store`
makes it the accounts file as a `bulkrt.shell.tokens.CredentialStore`: a lease holds ``<file>.lock``
(an ``flock``, so every process sharing the file takes turns), re-reads the file, and writes rotated
tokens back before it is released. A write-back changes only the account's ``access_token``,
``refresh_token`` and ``expires_at``, keeps ``env:`` references whose value did not change, and
replaces the file atomically (a temporary file beside it, fsync, rename, fsync of the directory): a
crash leaves the old file or the new one, never a mix.

A symlinked accounts file is written through: the link's target is replaced, and the lock and
temporary files live beside the target. The file keeps its permissions, narrowed to 0600 at
most, since it then holds a secret in clear (an ``env:`` secret that was rotated cannot be put
back into the environment of the shell that started bulkrt; the new value goes into the file).

A refresh whose answer may be lost is marked in ``<file>.refreshing`` (account, a hash of the
refresh token, when, which process) before it is sent, and the mark is cleared when the answer is
saved or refused: a mark left behind tells the next run that the refresh token it finds may
already be spent. `recover_write_back` (and `adopt_leftovers`, for a lease that holds the lock)
adopts, account by account, the rotated tokens a write-back left behind when they are newer than
the file's (see `_newer`: never over tokens the operator may have written since): the temporary
file of one that a crash interrupted before the rename, or the file `rescue_tokens` wrote when the
accounts file could not take them (a full or read-only filesystem).
`require_write_back` refuses, before anything is sent, OAuth 2.0 accounts whose file could not be
written back at all.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from bulkrt.atomic import fsync_directory, replacing
from bulkrt.errors import AccountsError, Problem
from bulkrt.jobs.job_files import gzip_start
from bulkrt.jobs.json_keys import Repeat, first_repeat, loads_noting_repeats
from bulkrt.logs import register_secrets
from bulkrt.shell.tokens import TokenSet

__all__ = [
    "ENV_PREFIX",
    "PRIVATE_MODE",
    "adopt_leftovers",
    "read_document",
    "recover_write_back",
    "require_write_back",
    "rescue_tokens",
    "save_oauth2_tokens",
    "target_of",
]

_log = structlog.get_logger()

#: how a value names an environment variable to read the secret from
ENV_PREFIX = "env:"
#: the most an accounts file holding a secret may be readable by
PRIVATE_MODE = 0o600


def target_of(path: Path | str) -> Path:
    """The file a (possibly symlinked) accounts path really names."""
    return Path(os.path.realpath(path))


def save_oauth2_tokens(
    path: Path | str,
    account: str,
    *,
    access_token: str,
    refresh_token: str | None,
    expires_at: datetime | None,
) -> None:
    """Write one account's refreshed OAuth 2.0 tokens into the accounts file, atomically, under
    its lock. ``refresh_token`` None keeps the refresh token the file holds (RFC 6749 §6: the
    server may send none, and then the old one stays valid). ``expires_at`` must be
    timezone-aware; it is written in UTC with a ``Z``."""
    target = target_of(path)
    tokens = TokenSet(
        access_token, refresh_token, expires_at.timestamp() if expires_at is not None else None
    )
    with _locked(target):
        write_tokens(target, account, tokens)


def read_document(path: Path) -> Any:
    """The parsed JSON of an accounts file; raise `AccountsError` if it cannot be read."""
    name = str(path)
    try:
        data = path.read_bytes()
        inflated = gzip_start(data, 65536)
        if inflated is not None:
            raise AccountsError([Problem(name, None, "file", _gzip_message(inflated))])
        text = data.decode("utf-8-sig")
    except FileNotFoundError:
        raise AccountsError([Problem(name, None, "file", "no such file")]) from None
    except UnicodeDecodeError as exc:
        raise AccountsError([Problem(name, None, "file", f"invalid UTF-8: {exc}")]) from None
    except OSError as exc:
        raise AccountsError([Problem(name, None, "file", f"cannot read: {exc}")]) from None
    try:
        document, repeated = loads_noting_repeats(text)
    except json.JSONDecodeError as exc:
        kind = _other_kind(text)
        if kind is not None:
            message = (
                f"this is {kind}, not an accounts file: nothing was read from it; give the "
                f"accounts file (JSON) with --accounts and the job as the command's argument"
            )
            raise AccountsError([Problem(name, None, "file", message)]) from None
        # the message and position only: never the text, which holds secrets
        problem = Problem(name, exc.lineno, "json", f"{exc.msg} (column {exc.colno})")
        raise AccountsError([problem]) from None
    repeat = first_repeat(text) if repeated else None
    if repeat is not None:
        raise AccountsError([Problem(name, repeat.line, repeat.field, _repeat_message(repeat))])
    return document


def _repeat_message(repeat: Repeat) -> str:
    """Why a key named twice in the accounts file is refused (JSON would keep the last)."""
    parts = repeat.field.split(".")
    if len(parts) == 2 and parts[0] == "accounts":
        return (
            f"account named twice (first on line {repeat.first_line}): only one entry would be "
            f"used, and this account's rows sent with the other entry's user and credentials "
            f"(two files merged?); keep one entry per account, or give the other a name of its "
            f"own"
        )
    return (
        f"named twice in the same object (first on line {repeat.first_line}): only the last "
        f"value would be used; keep one"
    )


def _gzip_message(start: bytes) -> str:
    """What a gzip-compressed file given as the accounts file is, by the start of its content
    inflated (a compressed ledger or journal, even cut short), for the operator."""
    kind = _other_kind(start.decode("utf-8", errors="replace"))
    what = f"a gzip-compressed file ({kind})" if kind else "a gzip-compressed file"
    return (
        f"this is {what}, not an accounts file: nothing was read from it; give the accounts "
        f"file (JSON) with --accounts"
    )


def _other_kind(text: str) -> str | None:
    """What a file that is not one JSON document is, by its first line, when it is another of
    bulkrt's files (a job file, a ledger) given as the accounts file; None for anything else.

    >>> _other_kind("account,tweet_id,action\\nacct001,20,retweet\\n")
    'a job file (CSV)'
    >>> _other_kind('{"schema":1,"run":"r","key":"k","status":"ok"}\\n{"schema":1}\\n')
    'a bulkrt ledger (outcomes of runs)'
    """
    first = text.lstrip().split("\n", 1)[0].strip()
    columns = {column.strip().strip('"').lower() for column in first.split(",")}
    if {"account", "tweet_id"} <= columns:
        return "a job file (CSV)"
    try:
        line = json.loads(first)
    except ValueError:
        return None
    if isinstance(line, dict) and line.keys() >= {"schema", "run", "key", "status"}:
        return "a bulkrt ledger (outcomes of runs)"
    if isinstance(line, dict) and line.keys() >= {"e", "key"}:
        return "a ledger's journal (<ledger>.sent: the requests runs sent)"
    if isinstance(line, dict) and line.keys() >= {"account", "tweet_id"}:
        return "a job file (JSONL)"
    return None


def recover_write_back(path: Path | str, rescue_dirs: Sequence[Path] = ()) -> list[str]:
    """Adopt, account by account, the rotated tokens that an interrupted write-back left: the
    temporary files beside the accounts file (a run killed before its rename) and the files a
    run saved rotated tokens to when the accounts file could not be written (`rescue_tokens`,
    beside it or in ``rescue_dirs``). Each OAuth 2.0 account takes the newest tokens any of
    them holds (`_newer`), so a leftover never brings back another account's older, spent
    refresh token, nor old tokens over the ones an operator wrote after authorising again; a
    leftover whose tokens cannot be told older or newer is kept and named. Returns a line for
    the operator about each file it adopted from or left alone."""
    target = target_of(path)
    if not target.exists():
        return []
    try:
        if not _candidates(target, rescue_dirs):
            return []  # nothing to recover: no lock needed (the directory may be read-only)
        with _locked(target):
            notes = adopt_leftovers(target, rescue_dirs)
    except (OSError, AccountsError) as exc:
        _log.warning("accounts_file_leftover_unchecked", path=str(target), detail=str(exc))
        return []
    return notes


def adopt_leftovers(
    target: Path, rescue_dirs: Sequence[Path] = (), *, name_stale: bool = True
) -> list[str]:
    """`recover_write_back` with ``<target>.lock`` held by the caller (a lease re-reading the
    file before a refresh, so that a running run finds what another run's crash left; it
    passes ``name_stale`` False: a leftover holding nothing newer is named once, at start)."""
    found = _candidates(target, rescue_dirs)
    if not found:
        return []
    document = read_document(target)
    current = target.stat()
    best, complete, unsure, notes = _newest(
        target, found, document, current.st_mtime_ns, read_marks(target)
    )
    if best:
        for account, (_, entry, _) in best.items():
            oauth2 = document["accounts"][account]["oauth2"]
            for key in _TOKEN_KEYS:
                if key in entry and (entry[key] is not None or key == "expires_at"):
                    oauth2[key] = entry[key]
        with replacing(target, mode=stat.S_IMODE(current.st_mode) & PRIVATE_MODE) as out:
            out.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    for candidate in complete:
        taken = sorted(a for a, (_, _, source) in best.items() if source == candidate)
        name = candidate.name if candidate.parent == target.parent else str(candidate)
        doubtful = unsure.get(candidate, [])
        if taken:
            if not doubtful:
                candidate.unlink(missing_ok=True)
            notes.append(
                f"{target}: adopted {name}, the rotated tokens of {', '.join(taken)} an "
                f"interrupted write-back left"
            )
        if doubtful and name_stale:
            accounts = ", ".join(doubtful)
            notes.append(
                f"{target}: {candidate} (left by an interrupted write-back) holds other OAuth 2.0 "
                f"tokens for {accounts} than the file, which was written after it, and an "
                f"expiry (expires_at) is missing on one side, so nothing tells which are newer: "
                f"they were not adopted. If the file holds the tokens you wrote after "
                f"authorising the app again, delete {candidate}; if not, copy access_token, "
                f"refresh_token and expires_at of {accounts} from it into the file"
            )
        elif not taken and not doubtful and name_stale:
            notes.append(
                f"{target}: {candidate} (left by an interrupted write-back) holds no token newer "
                f"than the file's; it was not adopted and may be deleted"
            )
    for note in notes:
        _log.warning("accounts_file_leftover", detail=note)
    return notes


def rescue_tokens(
    target: Path, account: str, tokens: TokenSet, directories: Sequence[Path]
) -> Path | None:
    """Save ``account``'s rotated ``tokens``, which the accounts file could not take, in a new
    private file ``<file>.rescued-<random>.json`` in the first of ``directories`` that takes it
    (`recover_write_back` adopts it); None if none did (the tokens then live only in memory)."""
    entry: dict[str, str | None] = {
        "access_token": tokens.access_token,
        "expires_at": iso(datetime.fromtimestamp(tokens.expires_at, UTC))
        if tokens.expires_at is not None
        else None,
    }
    if tokens.refresh_token is not None:
        entry["refresh_token"] = tokens.refresh_token
    saved: dict[str, Any] = {"oauth2": entry}
    # who the tokens belong to, so that only this user's entry ever adopts them
    with suppress(AccountsError, KeyError, TypeError):
        saved["user_id"] = read_document(target)["accounts"][account]["user_id"]
    text = json.dumps({"rescued_from": str(target), "accounts": {account: saved}})
    for directory in _unique(directories):
        try:
            fd, name = tempfile.mkstemp(
                prefix=f"{target.name}{_RESCUED}", suffix=".json", dir=directory
            )
        except OSError:
            continue
        try:
            with os.fdopen(fd, "wb") as out:
                os.fchmod(out.fileno(), PRIVATE_MODE)
                out.write((text + "\n").encode())
                out.flush()
                os.fsync(out.fileno())
            fsync_directory(directory)
        except OSError:
            Path(name).unlink(missing_ok=True)
            continue
        return Path(name)
    return None


def write_back_problem(path: Path | str) -> str | None:
    """Why rotated OAuth 2.0 tokens could not be written back beside the accounts file (its
    lock cannot be opened, no file can be made in its directory), or None."""
    target = target_of(path)
    lock = lock_path(target)
    try:  # an existing lock must open for writing; a new one is made like the probe below
        os.close(os.open(lock, os.O_RDWR))
    except FileNotFoundError:
        pass
    except OSError as exc:
        return f"cannot open {lock}: {exc.strerror or exc}"
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".probe", dir=target.parent)
    except OSError as exc:
        return f"cannot make a file in {target.parent}: {exc.strerror or exc}"
    os.close(fd)
    Path(probe).unlink(missing_ok=True)
    return None


def require_write_back(path: Path | str, oauth2_accounts: Sequence[str]) -> None:
    """Refuse (`AccountsError`, before anything is sent) an accounts file whose OAuth 2.0
    accounts ``oauth2_accounts`` are used but whose rotated tokens could not be written back.

    No run can use such an account honestly: every refresh replaces the refresh token, and the
    old one stops working, so the new one must be kept where the next refresh (this run's,
    another run's, the next run's) finds it."""
    if not oauth2_accounts:
        return
    problem = write_back_problem(path)
    if problem is None:
        return
    names = ", ".join(oauth2_accounts[:5]) + (" ..." if len(oauth2_accounts) > 5 else "")
    target = target_of(path)
    message = (
        f"its OAuth 2.0 accounts ({names}) need {lock_path(target).name} and the write-back of "
        f"rotated tokens beside it, in {target.parent}, but {problem}. Each refresh replaces the "
        f"refresh token and the old one stops working, so the new one must be written there: "
        f"put the accounts file in a directory this user can write (one file that every run "
        f"uses, not copies), or use OAuth 1.0a credentials for these accounts"
    )
    raise AccountsError([Problem(str(path), None, "file", message)])


# -- internals -------------------------------------------------------------------------------


#: the values a write-back changes
_TOKEN_KEYS = ("access_token", "refresh_token", "expires_at")
#: what names a file of rotated tokens saved away from an unwritable accounts file
_RESCUED = ".rescued-"


def _unique(directories: Sequence[Path]) -> list[Path]:
    seen: set[str] = set()
    unique: list[Path] = []
    for directory in directories:
        key = os.path.realpath(directory)
        if key not in seen:
            seen.add(key)
            unique.append(directory)
    return unique


def _candidates(target: Path, rescue_dirs: Sequence[Path]) -> list[Path]:
    """The leftovers of interrupted write-backs of ``target`` (oldest first)."""
    leftover = re.compile(rf"^\.{re.escape(target.name)}\.[^.]+\.tmp$")
    rescued = re.compile(rf"^{re.escape(target.name)}{re.escape(_RESCUED)}[^/]+\.json$")
    found: list[tuple[int, Path]] = []
    for directory in _unique([target.parent, *rescue_dirs]):
        here = directory == target.parent
        try:
            names = list(directory.iterdir())
        except OSError:
            continue
        for path in names:
            if rescued.match(path.name) or (here and leftover.match(path.name)):
                try:  # another process may have adopted it meanwhile
                    found.append((path.stat().st_mtime_ns, path))
                except FileNotFoundError:
                    continue
    return [path for _, path in sorted(found)]


_Best = dict[str, tuple[tuple[float, int], dict[str, Any], Path]]

#: how long before its refresh's mark a leftover of that refresh may seem written (a file's
#: time comes from a coarser clock than the mark's)
_MARK_SLACK_NS = 1_000_000_000


def _newest(
    target: Path, found: Sequence[Path], document: Any, mtime_ns: int, marks: dict[str, Any]
) -> tuple[_Best, list[Path], dict[Path, list[str]], list[str]]:
    """Per account, the leftover holding tokens newer than ``document``'s (and the newest of
    them); the complete leftovers; the accounts of each leftover whose tokens differ from the
    file's with nothing to tell which are newer; a note for each incomplete one."""
    best: _Best = {}
    complete: list[Path] = []
    unsure: dict[Path, list[str]] = {}
    notes: list[str] = []
    for candidate in found:
        theirs = _tokens_of(candidate, target, document)
        if theirs is None:
            notes.append(
                f"{target}: {candidate} is an incomplete copy left by an interrupted write-back; "
                f"it was not adopted"
            )
            continue
        complete.append(candidate)
        when = candidate.stat().st_mtime_ns
        for account, entry in theirs.items():
            ours = document["accounts"][account]["oauth2"]
            rank = (_expiry(entry), when)
            newer = _newer(entry, ours, rank, mtime_ns, marks.get(account))
            if newer is None:
                unsure.setdefault(candidate, []).append(account)
            elif newer and (account not in best or rank > best[account][0]):
                best[account] = (rank, entry, candidate)
    return best, complete, unsure, notes


def _tokens_of(candidate: Path, target: Path, document: Any) -> dict[str, dict[str, Any]] | None:
    """The OAuth 2.0 token entries of a leftover, by account: those ``target``'s ``document``
    has too, for the same user (by ``user_id``, else the file the leftover was written for);
    None when it is not a whole document (a temporary file cut short, another file). Accounts
    added to or removed from the file since the leftover was written change nothing for the
    others: each account is matched on its own."""
    try:
        theirs = json.loads(candidate.read_bytes().decode("utf-8-sig"))
        accounts = theirs["accounts"]
        ours = document["accounts"]
        if not isinstance(accounts, dict) or not isinstance(ours, dict):
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    # a temporary file beside the accounts file is its own; a rescued one names its file
    same_file = str(target) if candidate.name.endswith(".tmp") else theirs.get("rescued_from")
    entries: dict[str, dict[str, Any]] = {}
    for account, entry in accounts.items():
        oauth2 = entry.get("oauth2") if isinstance(entry, dict) else None
        mine = ours.get(account)
        if not (
            isinstance(oauth2, dict)
            and isinstance(mine, dict)
            and isinstance(mine.get("oauth2"), dict)
        ):
            continue
        # the same user (a file of the same name elsewhere may name other users alike)
        if "user_id" in entry and "user_id" in mine:
            if str(entry["user_id"]) != str(mine["user_id"]):
                continue
        elif not isinstance(same_file, str) or target_of(same_file) != target:
            continue
        entries[account] = oauth2
    return entries


def _expiry(entry: dict[str, Any]) -> float:
    raw = entry.get("expires_at")
    if isinstance(raw, str):
        try:
            when = datetime.fromisoformat(raw)
        except ValueError:
            return float("-inf")
        if when.tzinfo is not None:
            return when.timestamp()
    return float("-inf")


def _newer(
    entry: dict[str, Any],
    ours: dict[str, Any],
    rank: tuple[float, int],
    mtime_ns: int,
    mark: object,
) -> bool | None:
    """Whether a leftover's tokens of an account are newer than the file's; None when nothing
    tells (the leftover is then left alone and named).

    A leftover only ever holds tokens bulkrt had when it was written; the file may since hold
    tokens the operator wrote after authorising the app again, and writing a leftover over
    those would lose the only working refresh token. So a leftover is newer when:

    - the file still holds the refresh token whose refresh was marked in flight
      (``<file>.refreshing``) before the leftover was written: the leftover is that refresh's
      answer;
    - or both give an expiry: the leftover's is later (or the same, in a file written after
      the accounts file);
    - or an expiry is missing (null, absent, without a zone: the loader accepts that) and the
      file has not been written since the leftover was (by its modification time).

    Any other leftover with other tokens (an expiry missing and the file written after it) may
    be older than what the operator wrote: None, never a guess."""
    if all(entry.get(key) == ours.get(key) for key in _TOKEN_KEYS):
        return False
    expiry, when = rank
    if isinstance(mark, dict) and mark.get("token") == fingerprint(
        _resolve(ours.get("refresh_token"))
    ):
        since = _mark_time(mark.get("since"))
        if since is not None and when >= since - _MARK_SLACK_NS:
            return True
    mine = _expiry(ours)
    if expiry != float("-inf") and mine != float("-inf"):
        return expiry > mine or (expiry == mine and when >= mtime_ns)
    if when > mtime_ns:
        return True
    return None


def _mark_time(raw: object) -> int | None:
    """A refresh mark's time (``since``) in nanoseconds, or None."""
    if not isinstance(raw, str):
        return None
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return int(when.timestamp() * 1e9) if when.tzinfo is not None else None


def stored_tokens(target: Path, account: str) -> TokenSet | None:
    document = read_document(target)
    try:
        oauth2 = document["accounts"][account]["oauth2"]
        access = _resolve(oauth2.get("access_token"))
        refresh = _resolve(oauth2.get("refresh_token"))
    except (KeyError, TypeError, AttributeError):
        return None
    if access is None:
        return None
    expires: float | None = None
    raw = oauth2.get("expires_at")
    if isinstance(raw, str):
        try:
            when = datetime.fromisoformat(raw)
            expires = when.timestamp() if when.tzinfo is not None else None
        except ValueError:
            expires = None
    register_secrets([access, refresh])
    return TokenSet(access, refresh, expires)


def _resolve(value: object) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    if value.startswith(ENV_PREFIX):
        return os.environ.get(value.removeprefix(ENV_PREFIX)) or None
    return value


def write_tokens(target: Path, account: str, tokens: TokenSet) -> None:
    """Write ``tokens`` into the account's entry (the lock is held by the caller)."""
    register_secrets([tokens.access_token, tokens.refresh_token])
    document = read_document(target)
    try:
        oauth2 = document["accounts"][account]["oauth2"]
        if not isinstance(oauth2, dict):
            raise TypeError
    except (KeyError, TypeError):
        where = f"accounts.{account}.oauth2"
        raise AccountsError([Problem(str(target), None, where, "missing")]) from None
    new: dict[str, str | None] = {
        "access_token": tokens.access_token,
        "expires_at": iso(datetime.fromtimestamp(tokens.expires_at, UTC))
        if tokens.expires_at is not None
        else None,
    }
    if tokens.refresh_token is not None:  # none sent: the old one stays valid
        new["refresh_token"] = tokens.refresh_token
    for key, value in new.items():
        old = oauth2.get(key)
        unchanged_env = isinstance(old, str) and old.startswith(ENV_PREFIX)
        if unchanged_env and os.environ.get(str(old).removeprefix(ENV_PREFIX)) == value:
            continue
        if unchanged_env:
            _log.warning(
                "env_secret_rotated",
                account=account,
                field=key,
                detail=f"{old} is out of date; the new value is kept in the accounts file, "
                f"readable by its owner only",
            )
        oauth2[key] = value
    mode = stat.S_IMODE(target.stat().st_mode)
    if mode & ~PRIVATE_MODE:
        _log.warning(
            "accounts_file_narrowed",
            path=str(target),
            mode=f"{mode & PRIVATE_MODE:04o}",
            detail=f"it was {mode:04o}; it now holds rotated tokens in clear",
        )
    with replacing(target, mode=mode & PRIVATE_MODE) as out:
        out.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def fingerprint(token: str | None) -> str:
    return hashlib.sha256((token or "").encode()).hexdigest()[:32]


def _marks_path(target: Path) -> Path:
    return target.with_name(target.name + ".refreshing")


def read_marks(target: Path) -> dict[str, Any]:
    try:
        marks = json.loads(_marks_path(target).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return marks if isinstance(marks, dict) else {}


def set_mark(target: Path, account: str, mark: dict[str, Any] | None) -> None:
    """Record (or clear, with None) the refresh in flight of ``account``; durable on return."""
    marks = read_marks(target)
    if mark is None:
        if account not in marks:
            return
        del marks[account]
    else:
        marks[account] = mark
    path = _marks_path(target)
    if not marks:
        path.unlink(missing_ok=True)
        return
    with replacing(path, mode=PRIVATE_MODE) as out:
        out.write(json.dumps(marks, indent=2) + "\n")


def iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def lock_path(target: Path) -> Path:
    return target.with_name(target.name + ".lock")


@contextmanager
def _locked(target: Path) -> Iterator[None]:
    """Hold ``<target>.lock`` exclusively (waiting for it)."""
    fd = os.open(lock_path(target), os.O_RDWR | os.O_CREAT, PRIVATE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
