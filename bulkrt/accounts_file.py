"""The accounts file on disk: reading its JSON document, and writing refreshed tokens back.

`bulkrt.accounts` checks the document and builds the credentials. `save_oauth2_tokens`
re-reads the file under a lock (``<file>.lock``, so two runs sharing an accounts file take
turns), changes only the account's ``access_token``, ``refresh_token`` and ``expires_at``,
keeps ``env:`` references whose value did not change, and replaces the file atomically: a
temporary file in the same directory, fsync, rename, fsync of the directory, keeping the
file's mode. A crash leaves either the old file or the new one, never a mix. Call it *before*
using the new access token (CONTRACT "Accounts file").
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bulkrt.atomic import replacing
from bulkrt.errors import AccountsError, Problem
from bulkrt.logs import register_secrets

__all__ = ["ENV_PREFIX", "read_document", "save_oauth2_tokens"]

#: how a value names an environment variable to read the secret from
ENV_PREFIX = "env:"


def save_oauth2_tokens(
    path: Path | str,
    account: str,
    *,
    access_token: str,
    refresh_token: str | None,
    expires_at: datetime | None,
) -> None:
    """Write one account's refreshed OAuth 2.0 tokens into the accounts file, atomically.

    ``refresh_token`` is written as given: pass the old one when the server sent none.
    ``expires_at`` must be timezone-aware; it is written in UTC with a ``Z``.
    """
    path = Path(path)
    register_secrets([access_token, refresh_token])
    new = {
        "access_token": access_token,
        "refresh_token": refresh_token,
        "expires_at": _iso(expires_at) if expires_at else None,
    }
    with _locked(path):
        document = read_document(path)
        try:
            oauth2 = document["accounts"][account]["oauth2"]
        except (KeyError, TypeError):
            where = f"accounts.{account}.oauth2"
            raise AccountsError([Problem(str(path), None, where, "missing")]) from None
        for key, value in new.items():
            old = oauth2.get(key)
            unchanged_env = isinstance(old, str) and old.startswith(ENV_PREFIX)
            if unchanged_env and os.environ.get(str(old).removeprefix(ENV_PREFIX)) == value:
                continue
            oauth2[key] = value
        _replace(path, json.dumps(document, indent=2, ensure_ascii=False) + "\n")


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
        problem = Problem(name, exc.lineno, "json", f"{exc.msg} (column {exc.colno})")
        raise AccountsError([problem]) from None


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold ``<path>.lock`` exclusively (waiting for it) while the accounts file is rewritten."""
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _replace(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``, keeping its mode: the old file or the new, never a mix."""
    with replacing(path, mode=stat.S_IMODE(path.stat().st_mode)) as out:
        out.write(text)
