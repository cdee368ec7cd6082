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
already be spent. `recover_write_back` adopts the temporary file of a write-back that a crash
interrupted after the file was complete but before the rename.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from bulkrt.atomic import replacing
from bulkrt.errors import AccountsError, Problem
from bulkrt.logs import register_secrets
from bulkrt.shell.tokens import TokenSet

__all__ = [
    "ENV_PREFIX",
    "PRIVATE_MODE",
    "read_document",
    "recover_write_back",
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
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise AccountsError([Problem(name, None, "file", "no such file")]) from None
    except UnicodeDecodeError as exc:
        raise AccountsError([Problem(name, None, "file", f"invalid UTF-8: {exc}")]) from None
    except OSError as exc:
        raise AccountsError([Problem(name, None, "file", f"cannot read: {exc}")]) from None
    try:
        return json.loads(text)
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


def recover_write_back(path: Path | str) -> list[str]:
    """Adopt what a crash during a write-back left: the newest complete temporary file of the
    accounts file that is newer than the file itself. Returns a line for the operator about
    each leftover it adopted or left alone (naming the one command that adopts it)."""
    target = target_of(path)
    notes: list[str] = []
    if not target.exists():
        return notes
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.[^.]+\.tmp$")
    try:
        if not any(pattern.match(p.name) for p in target.parent.iterdir()):
            return notes  # nothing to recover: no lock needed (the directory may be read-only)
        return _recover(target, pattern)
    except OSError as exc:
        _log.warning("accounts_file_leftover_unchecked", path=str(target), detail=str(exc))
        return notes


def _recover(target: Path, pattern: re.Pattern[str]) -> list[str]:
    notes: list[str] = []
    with _locked(target):
        leftovers = sorted(
            (p for p in target.parent.iterdir() if pattern.match(p.name)),
            key=lambda p: p.stat().st_mtime_ns,
            reverse=True,
        )
        current = target.stat()
        adopted = False
        for tmp in leftovers:
            newer = tmp.stat().st_mtime_ns >= current.st_mtime_ns
            complete = _same_accounts(tmp, target)
            if newer and complete and not adopted:
                os.chmod(tmp, stat.S_IMODE(current.st_mode) & PRIVATE_MODE)
                os.replace(tmp, target)
                adopted = True
                notes.append(
                    f"{target}: adopted {tmp.name}, the rotated tokens an interrupted write-back "
                    f"left beside it"
                )
            elif complete:
                notes.append(
                    f"{target}: {tmp} is an older copy left by an interrupted write-back; if it "
                    f"holds tokens you need, adopt it with: mv {tmp} {target}"
                )
            else:
                notes.append(
                    f"{target}: {tmp} is an incomplete copy left by an interrupted write-back; "
                    f"it was not adopted"
                )
    for note in notes:
        _log.warning("accounts_file_leftover", detail=note)
    return notes


# -- internals -------------------------------------------------------------------------------


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


def _same_accounts(candidate: Path, target: Path) -> bool:
    """Whether ``candidate`` is a whole accounts document with the same accounts as ``target``."""
    try:
        theirs = json.loads(candidate.read_bytes().decode("utf-8-sig"))
        ours = read_document(target)
        return isinstance(theirs, dict) and set(theirs["accounts"]) == set(ours["accounts"])
    except (OSError, ValueError, KeyError, TypeError, AccountsError):
        return False


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
