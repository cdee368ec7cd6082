"""OAuth 2.0 tokens and the store that keeps them between runs and shares them between processes.

A refresh token rotates on every use: the old one stops working the moment the token endpoint
answers. So whoever refreshes must hold the account exclusively, from reading the tokens the
store holds until the rotated ones are saved. `CredentialStore.lease` gives that exclusive hold;
the accounts file (`bulkrt.shell.accounts_file.FileCredentialStore`) implements it with a file lock,
and a store shared by several machines can implement it with a lock of its own.

The rule every holder follows (`bulkrt.shell.credentials.OAuth2Bearer.refresh`):

1. take the lease and read the stored tokens;
2. if they are not the ones this process holds, another process rotated them: adopt them;
3. else mark the refresh as begun, ask the token endpoint, save what it answered, end the lease.

The mark of step 3 stays when the answer is lost (the process died, or the answer never came
after the request was sent), so the next holder knows the stored refresh token may be spent.

A store that cannot be written (the lease, the mark or the save) raises
`bulkrt.errors.TokenStoreError`; a save that fails keeps the rotated tokens somewhere the store
will adopt them from, if it can, and the error says where (``saved``).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["CredentialStore", "LostRefresh", "TokenLease", "TokenSet"]


@dataclass(frozen=True, slots=True)
class TokenSet:
    """An access token, its refresh token and its expiry (epoch seconds)."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: float | None


@dataclass(frozen=True, slots=True)
class LostRefresh:
    """A refresh begun with the stored refresh token whose answer was never saved."""

    #: when it was begun (ISO-8601 UTC)
    since: str
    #: the process that began it
    pid: int


class TokenLease(Protocol):
    """One account's stored tokens, held exclusively until the lease ends."""

    @property
    def stored(self) -> TokenSet | None:
        """The tokens as the store holds them (None if the account is no longer there)."""
        ...

    @property
    def lost(self) -> LostRefresh | None:
        """A refresh begun with the stored refresh token whose answer was lost, if any."""
        ...

    async def begin_refresh(self) -> None:
        """Record that a refresh with the stored refresh token is about to be sent."""
        ...

    async def abandon_refresh(self) -> None:
        """The refresh was not sent, or was refused: the stored token was not rotated by it."""
        ...

    async def save(self, tokens: TokenSet) -> None:
        """Store rotated tokens durably (and clear the mark of the refresh that gave them)."""
        ...

    async def reread(self) -> TokenSet | None:
        """Read the stored tokens again (after a refusal, in case someone replaced them)."""
        ...


class CredentialStore(Protocol):
    """Where OAuth 2.0 tokens live; `lease` holds one account's tokens exclusively."""

    def lease(self, account: str) -> AbstractAsyncContextManager[TokenLease]: ...
