"""Who exists in a sandbox: one developer app and its users, with credentials derived from a seed.

The same ``--users N --seed S`` always yields the same users, IDs and initial credentials, so an
accounts file written once keeps working against a restarted sandbox (until a token is rotated).
"""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

__all__ = ["App", "AuthKind", "SandboxUser", "World", "build_world"]

_ALPHANUMERIC = string.ascii_letters + string.digits
_TABLES: dict[str, bytes] = {}


def derive(seed: int, label: str, length: int, alphabet: str = _ALPHANUMERIC) -> str:
    """A deterministic pseudo-random string for ``label`` under ``seed``: each byte of a SHA-256
    digest picks ``alphabet[byte % len(alphabet)]``."""
    table = _TABLES.get(alphabet)
    if table is None:  # byte -> character, as one str.translate table (built once per alphabet)
        table = _TABLES[alphabet] = bytes.maketrans(
            bytes(range(256)), bytes(ord(alphabet[b % len(alphabet)]) for b in range(256))
        )
    out = b""
    counter = 0
    while len(out) < length:
        digest = hashlib.sha256(f"bulkrt-sandbox:{seed}:{label}:{counter}".encode()).digest()
        out += digest.translate(table)
        counter += 1
    return out[:length].decode("ascii")


class AuthKind(StrEnum):
    """How a sandbox user's account authenticates."""

    #: OAuth 1.0a user context (HMAC-SHA1)
    OAUTH1 = "oauth1"
    #: OAuth 2.0 user access token, refreshed with a rotating refresh token
    OAUTH2 = "oauth2"


@dataclass(frozen=True, slots=True)
class App:
    """The developer app every sandbox user has authorised."""

    app_id: str
    consumer_key: str
    consumer_secret: str
    client_id: str
    #: None for a public OAuth 2.0 client
    client_secret: str | None

    def __repr__(self) -> str:
        return f"App(app_id={self.app_id!r}, consumer_key={self.consumer_key!r})"


@dataclass(frozen=True, slots=True)
class SandboxUser:
    """A user of the sandbox and the initial credentials of its account."""

    name: str
    user_id: str
    username: str
    auth: AuthKind
    #: OAuth 1.0a access token (``<user_id>-...``) and secret
    access_token: str
    access_token_secret: str
    #: OAuth 2.0 initial access and refresh tokens
    oauth2_access_token: str
    oauth2_refresh_token: str

    def __repr__(self) -> str:
        return f"SandboxUser(name={self.name!r}, user_id={self.user_id!r}, auth={self.auth})"


@dataclass(frozen=True, slots=True)
class World:
    """The app and its users."""

    app: App
    users: tuple[SandboxUser, ...]

    def accounts_file(self, *, expires_at: float) -> dict[str, Any]:
        """The users as an accounts file in the README's format, ready for ``bulkrt run``."""
        stamp = datetime.fromtimestamp(expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        accounts: dict[str, Any] = {}
        for user in self.users:
            entry: dict[str, Any] = {"user_id": user.user_id}
            if user.auth is AuthKind.OAUTH1:
                entry["oauth1"] = {
                    "consumer_key": self.app.consumer_key,
                    "consumer_secret": self.app.consumer_secret,
                    "access_token": user.access_token,
                    "access_token_secret": user.access_token_secret,
                }
            else:
                entry["oauth2"] = {
                    "client_id": self.app.client_id,
                    "client_secret": self.app.client_secret,
                    "access_token": user.oauth2_access_token,
                    "refresh_token": user.oauth2_refresh_token,
                    "expires_at": stamp,
                }
            accounts[user.name] = entry
        return {"accounts": accounts}


def _user_id(seed: int, index: int) -> str:
    # 19-digit snowflake-like IDs, below 2**63 like real ones
    return str(10**18 + int(derive(seed, f"user-id-{index}", 17, string.digits)))


def build_world(users: int, seed: int, *, confidential_client: bool = False) -> World:
    """The app and ``users`` users for ``seed``; odd-numbered users use OAuth 1.0a, even 2.0."""
    app = App(
        app_id=str(int(derive(seed, "app-id", 8, string.digits)) + 10_000_000),
        consumer_key=derive(seed, "consumer-key", 25),
        consumer_secret=derive(seed, "consumer-secret", 50),
        client_id=derive(seed, "client-id", 34),
        client_secret=derive(seed, "client-secret", 50) if confidential_client else None,
    )
    people = []
    for index in range(1, users + 1):
        user_id = _user_id(seed, index)
        people.append(
            SandboxUser(
                name=f"acct{index:03d}",
                user_id=user_id,
                username=f"sandbox_acct{index:03d}",
                auth=AuthKind.OAUTH1 if index % 2 else AuthKind.OAUTH2,
                access_token=f"{user_id}-{derive(seed, f'access-token-{index}', 30)}",
                access_token_secret=derive(seed, f"access-token-secret-{index}", 45),
                oauth2_access_token=derive(seed, f"oauth2-access-{index}", 91),
                oauth2_refresh_token=derive(seed, f"oauth2-refresh-{index}", 91),
            )
        )
    return World(app, tuple(people))
