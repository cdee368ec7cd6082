"""The dispatcher's one seam to the outside: a `Sender` per account sends one retweet or undo,
or refreshes the account's credentials, and says how it went as a value, never an exception.

`HttpSender` is the real one: the HTTP client, the account's authorizer and its user id. A test
or a simulation speaks the same Protocol (scripted answers, the sandbox's state in virtual
time); the pure core classifies what comes back (`bulkrt.core.outcome.classify` for an answer,
`bulkrt.core.credential_refresh` for a refresh or a request the credentials kept from going).

    senders = {name: HttpSender(client, authorizer, user_id) for ...}
    exchange = await senders["acme"].send(Action.RETWEET, "20")   # an `Exchange`
    report = await senders["acme"].refresh()                       # a `RefreshReport`
"""

from __future__ import annotations

from typing import Protocol

from bulkrt.core.credential_refresh import RefreshReport, RefreshVerdict
from bulkrt.core.items import Action
from bulkrt.shell.client import Authorizer, Exchange, XClient
from bulkrt.shell.credentials import (
    OAuth2Bearer,
    ReauthorizationNeeded,
    RefreshFailed,
    TokenStoreError,
)

__all__ = ["HttpSender", "Sender"]


class Sender(Protocol):
    """Sends one account's requests; every failure comes back as a value."""

    @property
    def user_id(self) -> str:
        """The account's numeric user id (written to the ledger)."""
        ...

    @property
    def refreshable(self) -> bool:
        """Whether the credentials can be refreshed (OAuth 2.0); False for OAuth 1.0a."""
        ...

    async def send(self, action: Action, tweet_id: str) -> Exchange:
        """One attempt of ``action`` on ``tweet_id``: the answer, the transport failure that
        replaced it, or (``Exchange.credentials``) why it never went out."""
        ...

    async def refresh(self) -> RefreshReport:
        """Refresh the credentials once (after a 401 to the current ones)."""
        ...


def _report(exc: ReauthorizationNeeded | RefreshFailed | TokenStoreError) -> RefreshReport:
    if isinstance(exc, TokenStoreError):
        return RefreshReport(RefreshVerdict.STORE_FAILED, exc.detail, exc.detail, store=exc.path)
    if isinstance(exc, RefreshFailed):
        return RefreshReport(
            RefreshVerdict.FAILED, str(exc), exc.detail, http=exc.http, not_api=exc.not_api
        )
    return RefreshReport(RefreshVerdict.REFUSED, str(exc), exc.detail)


class HttpSender:
    """A `Sender` over HTTP: the client, the account's authorizer and its user id."""

    def __init__(self, client: XClient, authorizer: Authorizer, user_id: str) -> None:
        self._client = client
        self._auth = authorizer
        self._user_id = user_id

    @property
    def user_id(self) -> str:
        return self._user_id

    @property
    def refreshable(self) -> bool:
        return isinstance(self._auth, OAuth2Bearer)

    async def send(self, action: Action, tweet_id: str) -> Exchange:
        send = self._client.retweet if action is Action.RETWEET else self._client.undo
        try:
            return await send(self._auth, self._user_id, tweet_id)
        except (ReauthorizationNeeded, RefreshFailed, TokenStoreError) as exc:  # refreshing ahead
            return Exchange(None, sent=False, credentials=_report(exc))

    async def refresh(self) -> RefreshReport:
        if not isinstance(self._auth, OAuth2Bearer):
            return RefreshReport(RefreshVerdict.UNSUPPORTED)
        try:
            await self._auth.refresh()
        except (ReauthorizationNeeded, RefreshFailed, TokenStoreError) as exc:
            return _report(exc)
        return RefreshReport(RefreshVerdict.REFRESHED)
