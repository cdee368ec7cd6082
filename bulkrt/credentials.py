"""Per-account authorisation for API requests: OAuth 1.0a signatures made afresh for every
attempt, and OAuth 2.0 bearer tokens refreshed single-flight, persisted before they are used.

A refresh rotates the refresh token (the old one stops working), so the new tokens are written
back to the accounts file *first*, before the new access token is used or anything else happens:
the only moment a crash can strand an account is between the token endpoint's answer and the end
of that write, and it is kept as short as it can be.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import anyio
import structlog
from oauthlib.oauth1 import Client as OAuth1Client

from bulkrt.accounts import Account, OAuth1, OAuth2
from bulkrt.errors import BulkrtError

__all__ = [
    "OAuth1Signer",
    "OAuth2Bearer",
    "ReauthorizationNeeded",
    "RefreshFailed",
    "TokenSet",
    "authorizer_for",
]

_log = structlog.get_logger()

#: refresh this long before the access token's expiry, so no request goes out with a dying token
REFRESH_AHEAD = 60.0


class ReauthorizationNeeded(BulkrtError):
    """The account's refresh token was refused: only the account owner can authorise again."""

    def __init__(self, account: str, detail: str) -> None:
        super().__init__(
            f"account {account}: the OAuth 2.0 refresh token was refused ({detail}); "
            f"authorise the app again for this account and put the new tokens in the accounts file"
        )
        self.account = account
        self.detail = detail


class RefreshFailed(BulkrtError):
    """The token endpoint could not be reached or answered oddly; a later attempt may work."""

    def __init__(self, account: str, detail: str) -> None:
        super().__init__(f"account {account}: refreshing the OAuth 2.0 token failed: {detail}")
        self.account = account
        self.detail = detail


@dataclass(frozen=True, slots=True)
class TokenSet:
    """An access token, its refresh token and its expiry (epoch seconds)."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: float | None


class TokenAnswer(Protocol):
    """What the token endpoint answered (`bulkrt.client.Exchange` has this shape)."""

    @property
    def http(self) -> int | None: ...

    def json(self) -> object: ...


#: posts a form to the token endpoint, with Basic credentials for a confidential client
TokenEndpoint = Callable[[Mapping[str, str], tuple[str, str] | None], Awaitable[TokenAnswer]]
#: writes an account's new tokens to the accounts file (and must be durable when it returns)
PersistTokens = Callable[[str, TokenSet], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class OAuth1Signer:
    """Signs each request with HMAC-SHA1; every call uses a new nonce and timestamp.

    The JSON body is not part of the signature (RFC 5849 §3.4.1.3.1), as with tweepy.
    """

    credentials: OAuth1

    async def authorization(self, method: str, url: str) -> str:
        c = self.credentials
        client = OAuth1Client(
            c.consumer_key, c.consumer_secret, c.access_token, c.access_token_secret
        )
        _, headers, _ = client.sign(url, method)  # type: ignore[arg-type]  # stubs want a Literal
        return str(headers["Authorization"])


class OAuth2Bearer:
    """The bearer token of one OAuth 2.0 account, refreshed ahead of expiry and after a 401.

    Concurrent requests share one refresh: whoever finds the token stale refreshes it, the others
    wait on the lock and then use the new token.
    """

    def __init__(
        self,
        account: str,
        credentials: OAuth2,
        *,
        token_endpoint: TokenEndpoint,
        persist: PersistTokens,
        clock: Callable[[], float],
    ) -> None:
        self.account = account
        self._client_id = credentials.client_id
        self._client_secret = credentials.client_secret
        expires = credentials.expires_at.timestamp() if credentials.expires_at else None
        self._tokens = TokenSet(credentials.access_token, credentials.refresh_token, expires)
        self._token_endpoint = token_endpoint
        self._persist = persist
        self._clock = clock
        self._lock = anyio.Lock()
        #: increases with every refresh, so a caller can say which token it saw fail
        self.generation = 0
        #: how long before expiry a token counts as stale
        self._ahead = REFRESH_AHEAD

    def __repr__(self) -> str:
        return f"OAuth2Bearer(account={self.account!r}, generation={self.generation})"

    def _stale(self) -> bool:
        expires = self._tokens.expires_at
        # Refresh a minute ahead, or after half the lifetime of a token that lives less than
        # two minutes (else a fresh short-lived token would look stale at once).
        return expires is not None and self._clock() >= expires - self._ahead

    async def authorization(self, method: str, url: str) -> str:
        if self._stale():
            await self.refresh(seen=self.generation)
        return f"Bearer {self._tokens.access_token}"

    async def refresh(self, *, seen: int) -> None:
        """Refresh the token unless someone already did since generation ``seen`` was used."""
        async with self._lock:
            if self.generation != seen:
                return
            refresh_token = self._tokens.refresh_token
            if not refresh_token:
                raise ReauthorizationNeeded(self.account, "the accounts file has no refresh token")
            form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
            basic = None
            if self._client_secret is None:
                form["client_id"] = self._client_id
            else:
                basic = (self._client_id, self._client_secret)
            answer = await self._token_endpoint(form, basic)
            tokens = self._read(answer)
            # Persist first: the old refresh token is already dead.
            await self._persist(self.account, tokens)
            if tokens.expires_at is not None:
                self._ahead = min(REFRESH_AHEAD, (tokens.expires_at - self._clock()) / 2)
            self._tokens = tokens
            self.generation += 1
            _log.info("token_refreshed", account=self.account, generation=self.generation)

    def _read(self, answer: TokenAnswer) -> TokenSet:
        body = answer.json()
        if (
            answer.http == 200
            and isinstance(body, dict)
            and isinstance(body.get("access_token"), str)
        ):
            expires_in = body.get("expires_in")
            expires_at = (
                self._clock() + float(expires_in) if isinstance(expires_in, int | float) else None
            )
            refresh = body.get("refresh_token")
            return TokenSet(
                body["access_token"], refresh if isinstance(refresh, str) else None, expires_at
            )
        detail = ""
        if isinstance(body, dict):
            detail = str(body.get("error_description") or body.get("error") or "")
        if answer.http in (400, 401):
            raise ReauthorizationNeeded(self.account, detail or f"HTTP {answer.http}")
        raise RefreshFailed(
            self.account, detail or f"HTTP {answer.http}" if answer.http else "no answer"
        )


def authorizer_for(
    account: Account,
    *,
    token_endpoint: TokenEndpoint,
    persist: PersistTokens,
    clock: Callable[[], float],
) -> OAuth1Signer | OAuth2Bearer:
    """The authorizer of an account: OAuth 1.0a when it has those credentials, else OAuth 2.0."""
    if account.oauth1 is not None:
        return OAuth1Signer(account.oauth1)
    assert account.oauth2 is not None, "load_accounts guarantees one kind of credentials"
    return OAuth2Bearer(
        account.name, account.oauth2, token_endpoint=token_endpoint, persist=persist, clock=clock
    )


def expires_datetime(tokens: TokenSet) -> datetime | None:
    """The expiry as the accounts file stores it."""
    return datetime.fromtimestamp(tokens.expires_at, UTC) if tokens.expires_at is not None else None
