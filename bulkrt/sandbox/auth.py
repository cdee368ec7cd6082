"""Who is calling, and may they: OAuth 1.0a or OAuth 2.0 user context, app permissions, scopes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bulkrt.sandbox.config import Endpoint, SandboxConfig
from bulkrt.sandbox.oauth1 import OAuth1Token, OAuth1Verifier
from bulkrt.sandbox.oauth2 import DEFAULT_SCOPES, REQUIRED_SCOPES, TokenStore
from bulkrt.sandbox.problems import Problems, Reply
from bulkrt.sandbox.world import AuthKind, World

__all__ = ["AUTH_FAILURE_HEADER", "Authenticator", "Principal"]

#: a sandbox-only response header that says why authentication failed (real X says nothing)
AUTH_FAILURE_HEADER = "x-sandbox-auth-failure"
_READ_SCOPES = frozenset({"tweet.read", "users.read"})


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated user, and how they authenticated."""

    user_id: str
    kind: AuthKind
    #: the OAuth 2.0 token's scopes; None for OAuth 1.0a
    scopes: frozenset[str] | None = None


class Authenticator:
    """Verifies the ``Authorization`` header of API requests against the sandbox's credentials."""

    def __init__(self, config: SandboxConfig, world: World, problems: Problems, now: float) -> None:
        self._problems = problems
        app = world.app
        self.tokens = TokenStore(
            app,
            ttl=config.token_ttl,
            code_ttl=config.code_ttl,
            rotate=not config.omit_refresh_token,
        )
        oauth1_tokens = {}
        # Every user holds credentials of both kinds; the accounts file lists one per account.
        for user in world.users:
            oauth1_tokens[user.access_token] = OAuth1Token(
                user.user_id, app.consumer_key, user.access_token_secret
            )
            self.tokens.issue(
                user.user_id,
                DEFAULT_SCOPES,
                now,
                access=user.oauth2_access_token,
                refresh=user.oauth2_refresh_token,
            )
        self.oauth1 = OAuth1Verifier(
            {app.consumer_key: app.consumer_secret}, oauth1_tokens, config.timestamp_skew
        )
        self._client_id = app.client_id
        #: switchable at run time through the inspection API
        self.enrolled = config.enrolled
        self.oauth1_write = config.oauth1_write

    def authenticate(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes, now: float
    ) -> Principal | Reply:
        """The caller, or the 401/403 the API answers."""
        authorization = headers.get("Authorization", "")
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "oauth":
            verified = self.oauth1.verify(method, url, headers, body, now=now)
            if verified.user_id is None:
                return self._unauthorized(verified.reason)
            return Principal(verified.user_id, AuthKind.OAUTH1)
        if scheme.lower() == "bearer":
            token = credentials.strip()
            if self.tokens.is_app_token(token):
                return self._problems.unsupported_authentication()
            grant = self.tokens.lookup(token, now)
            if grant is None:
                return self._unauthorized("unknown, expired or revoked access token")
            return Principal(grant.user_id, AuthKind.OAUTH2, grant.scopes)
        return self._unauthorized("no OAuth 1.0a or Bearer Authorization header")

    def _unauthorized(self, reason: str) -> Reply:
        reply = self._problems.unauthorized()
        reply.headers[AUTH_FAILURE_HEADER] = reason
        return reply

    def permit(self, principal: Principal, endpoint: Endpoint) -> Reply | None:
        """The 403 for an app or token that may not use the endpoint, else None."""
        if not self.enrolled:
            return self._problems.client_forbidden(self._client_id)
        writes = endpoint is not Endpoint.USERS_ME
        if principal.kind is AuthKind.OAUTH1 and writes and not self.oauth1_write:
            return self._problems.oauth1_permissions()
        if principal.scopes is not None:
            needed = REQUIRED_SCOPES if writes else _READ_SCOPES
            if not needed <= principal.scopes:
                missing = ", ".join(sorted(needed - principal.scopes))
                return self._problems.forbidden(f"Missing required OAuth 2.0 scopes: {missing}")
        return None
