"""The accounts file: each account's user id and credentials, with ``env:`` secrets resolved.

Format (README "Accounts file")::

    {"accounts": {"<name>": {"user_id": "<digits>",
                             "oauth1": {"consumer_key", "consumer_secret",
                                        "access_token", "access_token_secret"},
                             "oauth2": {"client_id", "client_secret" (may be null),
                                        "access_token", "refresh_token" (may be null or absent),
                                        "expires_at" (ISO-8601, may be null or absent)}}}}

An account needs ``oauth1``, ``oauth2`` or both. Any credential may be written ``"env:NAME"`` to
read it from the environment variable NAME. `load_accounts` reports every problem at once, each
named by its JSON path (``accounts.beta.oauth2.refresh_token: ...``). Every secret is registered
with `bulkrt.logs.register_secrets`, and the ``repr`` of credentials never shows one.

Refreshed OAuth 2.0 tokens are written back by `save_oauth2_tokens` (from
`bulkrt.shell.accounts_file`).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from bulkrt.errors import AccountsError, Problem
from bulkrt.logs import register_secrets
from bulkrt.shell.accounts_file import ENV_PREFIX, read_document, save_oauth2_tokens

__all__ = [
    "Account",
    "Accounts",
    "OAuth1",
    "OAuth2",
    "load_accounts",
    "save_oauth2_tokens",
    "user_ids",
]

_log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class OAuth1:
    """OAuth 1.0a user-context credentials; the repr shows the consumer key only."""

    consumer_key: str
    consumer_secret: str = field(repr=False)
    access_token: str = field(repr=False)
    access_token_secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class OAuth2:
    """OAuth 2.0 user-context tokens; the repr shows the client id and expiry only."""

    client_id: str
    client_secret: str | None = field(repr=False)
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    #: when ``access_token`` expires (timezone-aware), if known
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class Account:
    """One authorised account: its name in job files, its X user id, and its credentials."""

    name: str
    user_id: str
    oauth1: OAuth1 | None
    oauth2: OAuth2 | None


@dataclass(frozen=True, slots=True)
class Accounts(Mapping[str, Account]):
    """The accounts of one file, by name; ``"acme" in accounts`` and ``accounts["acme"]`` work."""

    path: Path
    by_name: Mapping[str, Account]

    def __getitem__(self, name: str) -> Account:
        return self.by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.by_name)

    def __len__(self) -> int:
        return len(self.by_name)

    def secrets(self) -> frozenset[str]:
        """Every secret value the file holds (for redaction backstops such as the ledger writer)."""
        values: set[str | None] = set()
        for account in self.by_name.values():
            values.update(_secrets_of(account.oauth1, account.oauth2))
        return frozenset(v for v in values if v)


def user_ids(accounts: Accounts) -> dict[str, str]:
    """Each account's user id, by name (what a ledger's lines are checked against)."""
    return {name: account.user_id for name, account in accounts.by_name.items()}


def load_accounts(path: Path | str) -> Accounts:
    """Read and check the accounts file; raise `AccountsError` listing every problem found."""
    path = Path(path)
    document = read_document(path)
    _warn_if_readable(path)
    reader = _Reader(str(path))
    by_name: dict[str, Account] = {}
    top = reader.obj(document, "")
    accounts = reader.obj(top.get("accounts"), "accounts") if top is not None else None
    if accounts is not None:
        if not accounts:
            reader.bad("accounts", "no accounts")
        for name, entry in accounts.items():
            account = reader.account(name, entry)
            if account is not None:
                by_name[name] = account
    if reader.problems:
        raise AccountsError(reader.problems)
    result = Accounts(path, by_name)
    register_secrets(result.secrets())
    return result


def _warn_if_readable(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o044:
        _log.warning(
            "accounts_file_readable_by_others",
            path=str(path),
            mode=f"{mode:04o}",
            hint=f"chmod 600 {path}",
        )


class _Reader:
    """Checks the parsed document, collecting a `Problem` per bad value, named by JSON path."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.problems: list[Problem] = []

    def bad(self, where: str, message: str) -> None:
        self.problems.append(Problem(self.name, None, where or "(top level)", message))

    def obj(self, value: object, where: str) -> dict[str, Any] | None:
        if isinstance(value, dict):
            return value
        self.bad(where, "missing" if value is None else "must be a JSON object")
        return None

    def account(self, name: str, entry: object) -> Account | None:
        where = f"accounts.{name}"
        body = self.obj(entry, where)
        if body is None:
            return None
        before = len(self.problems)
        if not name.strip() or name != name.strip() or "," in name:
            self.bad(where, "account names must be non-empty, without commas or outer spaces")
        user_id = body.get("user_id")
        if isinstance(user_id, int) and not isinstance(user_id, bool):
            user_id = str(user_id)
        if not (isinstance(user_id, str) and user_id.isascii() and user_id.isdigit()):
            self.bad(f"{where}.user_id", "missing" if user_id is None else "must be digits")
        oauth1 = self.oauth1(body.get("oauth1"), f"{where}.oauth1")
        oauth2 = self.oauth2(body.get("oauth2"), f"{where}.oauth2")
        if "oauth1" not in body and "oauth2" not in body:
            self.bad(where, "needs oauth1 or oauth2 credentials")
        if len(self.problems) > before or not isinstance(user_id, str):
            return None
        return Account(name, user_id, oauth1, oauth2)

    def oauth1(self, value: object, where: str) -> OAuth1 | None:
        if value is None:
            return None
        body = self.obj(value, where) or {}
        keys = ("consumer_key", "consumer_secret", "access_token", "access_token_secret")
        got = [self.secret(body, key, where, required=True) for key in keys]
        if any(v is None for v in got):
            return None
        return OAuth1(*(str(v) for v in got))

    def oauth2(self, value: object, where: str) -> OAuth2 | None:
        if value is None:
            return None
        body = self.obj(value, where) or {}
        client_id = self.secret(body, "client_id", where, required=True)
        client_secret = self.secret(body, "client_secret", where, required=False)
        access_token = self.secret(body, "access_token", where, required=True)
        refresh_token = self.secret(body, "refresh_token", where, required=False)
        expires_at = self.when(body.get("expires_at"), f"{where}.expires_at")
        if client_id is None or access_token is None:
            return None
        return OAuth2(client_id, client_secret, access_token, refresh_token, expires_at)

    def secret(self, body: dict[str, Any], key: str, where: str, *, required: bool) -> str | None:
        value = body.get(key)
        where = f"{where}.{key}"
        if value is None:
            if required:
                self.bad(where, "missing")
            return None
        if not isinstance(value, str) or not value.strip():
            self.bad(where, "must be a non-empty string")
            return None
        if value.startswith(ENV_PREFIX):
            variable = value.removeprefix(ENV_PREFIX)
            resolved = os.environ.get(variable)
            if not resolved:
                self.bad(where, env_problem(variable, empty=resolved == ""))
                return None
            return resolved
        return value

    def when(self, value: object, where: str) -> datetime | None:
        if value is None:
            return None
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            parsed = None
        if not isinstance(value, str) or parsed is None or parsed.tzinfo is None:
            self.bad(where, "must be an ISO-8601 time with a zone, e.g. 2026-11-26T02:00:00Z")
            return None
        return parsed


#: the longest environment variable name quoted in a message; a longer one may be a secret
ENV_NAME_SHOWN_MAX = 20
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: conventional names (upper case) are shown at any length: a random secret is mixed case
_ENV_NAME_UPPER = re.compile(r"[A-Z_][A-Z0-9_]*")


def env_problem(variable: str, *, empty: bool) -> str:
    """What is wrong with ``env:VARIABLE``, quoting the name only when it looks like one.

    >>> env_problem("X_TOKEN", empty=False)
    'environment variable X_TOKEN is not set'
    >>> env_problem("TEST_ACME_CONSUMER_SECRET", empty=True)  # upper case: a name, not a secret
    'environment variable TEST_ACME_CONSUMER_SECRET is empty'
    >>> env_problem("kr8XOGAqYubE3xPq9-Lw2sZrT0aBcDeFgHiJkLmNoPqRs", empty=False)[-66:]
    'is not set (45 characters, not shown: a secret pasted after env:?)'
    """
    state = "is empty" if empty else "is not set"
    conventional = len(variable) <= 100 and _ENV_NAME_UPPER.fullmatch(variable)
    if conventional or (len(variable) <= ENV_NAME_SHOWN_MAX and _ENV_NAME.fullmatch(variable)):
        return f"environment variable {variable} {state}"
    return (
        f"names an environment variable that {state} ({len(variable)} characters, not shown: "
        f"a secret pasted after {ENV_PREFIX}?)"
    )


def _secrets_of(oauth1: OAuth1 | None, oauth2: OAuth2 | None) -> list[str | None]:
    values: list[str | None] = []
    if oauth1 is not None:
        values += [oauth1.consumer_secret, oauth1.access_token, oauth1.access_token_secret]
    if oauth2 is not None:
        values += [oauth2.client_secret, oauth2.access_token, oauth2.refresh_token]
    return values
