"""Per-account authorisation for API requests: OAuth 1.0a signatures made afresh for every
attempt, and OAuth 2.0 bearer tokens refreshed single-flight, persisted before they are used.

A refresh rotates the refresh token (the old one stops working), so it happens under the credential
store's lease (`bulkrt.shell.tokens`): the stored tokens are read first and adopted if another
process rotated them already; otherwise the refresh is marked as begun, sent, and its answer saved
before the lease ends and before the new access token is used.

Why the token request has no ordinary read timeout: once the request is sent, the server may rotate
the refresh token at any moment, and its answer is then the only copy of the new one. Giving up on a
slow answer cannot undo the rotation; it only throws the new token away. So the answer is waited for
as long as the connection lives (`bulkrt.shell.client.Timeouts.token_answer`, five minutes, bounds a
server that never answers); a process stopped by SIGSTOP (a sleeping laptop) finds the answer in its
socket when it continues and uses it. Only when the answer is truly lost (the connection broke or
the five minutes passed after the request was sent) is the account paused, with a message that says
the server may have rotated its refresh token, so the token in the accounts file may be spent; the
mark of that refresh stays, and the next run says so again before it presents that token.

A store that cannot be written (`bulkrt.errors.TokenStoreError`: the accounts file on a full or
read-only filesystem) is not a refusal: the error goes to the caller, which stops the run. When
the rotated tokens could not be saved, this process keeps using them (the store saved them
elsewhere if it could, and its error says where).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

import anyio
import structlog

from bulkrt.core.credential_refresh import refused_advice
from bulkrt.errors import ReauthorizationNeeded, RefreshFailed, RefreshLost, TokenStoreError
from bulkrt.shell.accounts import Account, OAuth1, OAuth2
from bulkrt.shell.oauth1_signature import OAuth1Key, fresh_nonce
from bulkrt.shell.tokens import CredentialStore, TokenLease, TokenSet

__all__ = [
    "OAuth1Signer",
    "OAuth2Bearer",
    "ReauthorizationNeeded",
    "RefreshFailed",
    "RefreshLost",
    "TokenSet",
    "TokenStoreError",
    "authorizer_for",
    "refused_advice",
]

_log = structlog.get_logger()

#: refresh this long before the access token's expiry, so no request goes out with a dying token
REFRESH_AHEAD = 60.0


class TokenAnswer(Protocol):
    """What the token endpoint answered (`bulkrt.shell.client.Exchange` has this shape)."""

    @property
    def http(self) -> int | None: ...

    @property
    def sent(self) -> bool: ...

    @property
    def content_type(self) -> str | None: ...

    def json(self) -> object: ...

    def describe(self) -> str: ...


#: posts a form to the token endpoint, with Basic credentials for a confidential client
TokenEndpoint = Callable[[Mapping[str, str], tuple[str, str] | None], Awaitable[TokenAnswer]]
#: called with every token the run comes to know, the moment it exists (for redaction)
SecretSink = Callable[[list[str | None]], None]


class OAuth1Signer:
    """Signs each request with HMAC-SHA1; every call uses a new nonce and the wall clock's second.

    The key material is prepared once (`bulkrt.shell.oauth1_signature.OAuth1Key`). The JSON body
    is not part of the signature (RFC 5849 §3.4.1.3.1), as with tweepy.
    """

    __slots__ = ("_key",)

    def __init__(self, credentials: OAuth1) -> None:
        c = credentials
        self._key = OAuth1Key(
            c.consumer_key, c.consumer_secret, c.access_token, c.access_token_secret
        )

    def __repr__(self) -> str:
        return f"OAuth1Signer({self._key!r})"

    async def authorization(self, method: str, url: str) -> str:
        return self._key.authorization(method, url, fresh_nonce(), int(time.time()))


def _ignore(_values: list[str | None]) -> None:
    return None


class OAuth2Bearer:
    """The bearer token of one OAuth 2.0 account, refreshed ahead of expiry and after a 401.

    Concurrent requests share one refresh: whoever finds the token stale refreshes it, the others
    wait on the lock and then use the new token. Other processes are kept in step by the store's
    lease (see the module's docstring).
    """

    def __init__(
        self,
        account: str,
        credentials: OAuth2,
        *,
        token_endpoint: TokenEndpoint,
        store: CredentialStore,
        clock: Callable[[], float],
        on_secret: SecretSink = _ignore,
    ) -> None:
        self.account = account
        self._client_id = credentials.client_id
        self._client_secret = credentials.client_secret
        expires = credentials.expires_at.timestamp() if credentials.expires_at else None
        self._tokens = TokenSet(credentials.access_token, credentials.refresh_token, expires)
        self._token_endpoint = token_endpoint
        self._store = store
        self._clock = clock
        self._on_secret = on_secret
        self._lock = anyio.Lock()
        #: why the refresh token was refused, until the store holds other tokens
        self._refused: ReauthorizationNeeded | None = None
        #: how long before expiry a token counts as stale (a token from the file expiring within
        #: a minute is refreshed at once)
        self._ahead = REFRESH_AHEAD

    def __repr__(self) -> str:
        return f"OAuth2Bearer(account={self.account!r})"

    def _ahead_for(self, tokens: TokenSet) -> float:
        # Refresh a minute ahead, or after half the lifetime of a token that lives less than
        # two minutes (else a fresh short-lived token would look stale at once).
        if tokens.expires_at is None:
            return REFRESH_AHEAD
        return max(0.0, min(REFRESH_AHEAD, (tokens.expires_at - self._clock()) / 2))

    def _stale(self, tokens: TokenSet | None = None) -> bool:
        expires = (tokens or self._tokens).expires_at
        return expires is not None and self._clock() >= expires - self._ahead

    async def authorization(self, method: str, url: str) -> str:
        if self._stale():
            async with self._lock:
                if self._stale():  # not refreshed by another request meanwhile
                    await self._refresh_locked()
        return f"Bearer {self._tokens.access_token}"

    def _use(self, tokens: TokenSet) -> None:
        self._on_secret([tokens.access_token, tokens.refresh_token])
        self._ahead = self._ahead_for(tokens)
        self._tokens = tokens

    async def refresh(self) -> None:
        """Refresh the token (after a 401: the caller, the scheduler, asks once per credential
        generation), or adopt the tokens another process sharing the store rotated already."""
        async with self._lock:
            await self._refresh_locked()

    async def _refresh_locked(self) -> None:
        """`refresh`, with the lock held."""
        async with self._store.lease(self.account) as lease:
            stored = lease.stored
            if stored is not None and stored.access_token != self._tokens.access_token:
                self._use(stored)
                _log.info("token_adopted", account=self.account)
                self._refused = None
                if not self._stale(stored):
                    return
            if self._refused is not None:
                raise self._refused  # the same token again would be refused again
            try:
                await self._rotate(lease)
            except ReauthorizationNeeded as refused:
                self._refused = refused
                raise

    async def _rotate(self, lease: TokenLease) -> None:
        """Send the refresh and save its answer (the lease is held)."""
        refresh_token = self._tokens.refresh_token
        if not refresh_token:
            raise ReauthorizationNeeded(self.account, "the accounts file has no refresh token")
        lost = lease.lost
        if lost is not None:
            _log.warning(
                "refresh_token_may_be_spent",
                account=self.account,
                detail=f"a refresh begun at {lost.since} by process {lost.pid} with this refresh "
                f"token lost its answer; trying the token once more",
            )
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        basic = None
        if self._client_secret is None:
            form["client_id"] = self._client_id
        else:
            basic = (self._client_id, self._client_secret)
        await lease.begin_refresh()
        answer = await self._token_endpoint(form, basic)
        if answer.http is None:
            if answer.sent:
                raise RefreshLost(self.account, answer.describe())
            await lease.abandon_refresh()
            raise RefreshFailed(self.account, answer.describe())
        try:
            tokens = self._read(answer, refresh_token)
        except ReauthorizationNeeded as refused:
            await lease.abandon_refresh()
            again = await lease.reread()
            if again is not None and again.access_token != self._tokens.access_token:
                self._use(again)  # someone put new tokens in the file meanwhile
                _log.info("token_adopted", account=self.account)
                return
            if lost is not None:
                raise ReauthorizationNeeded(
                    self.account,
                    f"{refused.detail}; it was most likely spent by the refresh begun at "
                    f"{lost.since} whose answer was lost",
                ) from None
            raise
        except RefreshFailed:
            await lease.abandon_refresh()
            raise
        # Save first: the old refresh token is already dead.
        self._on_secret([tokens.access_token, tokens.refresh_token])
        try:
            await lease.save(tokens)
        except TokenStoreError:
            self._use(tokens)  # the only live copy besides the one saved elsewhere, if any
            raise
        self._use(tokens)
        _log.info("token_refreshed", account=self.account)

    def _read(self, answer: TokenAnswer, old_refresh: str) -> TokenSet:
        body = answer.json()
        if (
            answer.http == 200
            and isinstance(body, dict)
            and isinstance(body.get("access_token"), str)
            and body["access_token"]
        ):
            expires_in = body.get("expires_in")
            expires_at = (
                self._clock() + float(expires_in) if isinstance(expires_in, int | float) else None
            )
            refresh = body.get("refresh_token")
            # RFC 6749 §6: without a new refresh token the old one stays valid.
            new_refresh = refresh if isinstance(refresh, str) and refresh else old_refresh
            return TokenSet(body["access_token"], new_refresh, expires_at)
        foreign = _not_token_endpoint(answer, body)
        if foreign is not None:
            raise RefreshFailed(self.account, foreign, http=answer.http, not_api=True)
        detail = ""
        if isinstance(body, dict):
            # only the error code: a description may echo what was sent, such as the token
            error = body.get("error")
            detail = str(error) if isinstance(error, str) and error.isidentifier() else ""
        if answer.http in (400, 401):
            raise ReauthorizationNeeded(self.account, detail or f"HTTP {answer.http}")
        raise RefreshFailed(self.account, detail or f"HTTP {answer.http}", http=answer.http)


def _not_token_endpoint(answer: TokenAnswer, body: object) -> str | None:
    """Why a refused token request's answer cannot be a token endpoint's, or None: an HTML page,
    or a 4xx (not 429) without an OAuth error code (RFC 6749 §5.2). A 5xx may come from a
    gateway in front of the endpoint."""
    http = answer.http
    if http is None or not 400 <= http < 500 or http == 429:
        return None
    ctype = (answer.content_type or "").split(";")[0].strip().lower()
    if ctype in ("text/html", "application/xhtml+xml"):
        return f"HTTP {http} with an HTML page ({ctype})"
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return None
    kind = "not JSON" if body is None else "JSON without an OAuth error code"
    return f"HTTP {http} with a body that is {kind}: not a token endpoint's answer"


def authorizer_for(
    account: Account,
    *,
    token_endpoint: TokenEndpoint,
    store: CredentialStore,
    clock: Callable[[], float],
    on_secret: SecretSink = _ignore,
) -> OAuth1Signer | OAuth2Bearer:
    """The authorizer of an account: OAuth 1.0a when it has those credentials, else OAuth 2.0."""
    if account.oauth1 is not None:
        return OAuth1Signer(account.oauth1)
    assert account.oauth2 is not None, "load_accounts guarantees one kind of credentials"
    return OAuth2Bearer(
        account.name,
        account.oauth2,
        token_endpoint=token_endpoint,
        store=store,
        clock=clock,
        on_secret=on_secret,
    )
