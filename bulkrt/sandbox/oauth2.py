"""OAuth 2.0 as X runs it: user access tokens that expire, refresh tokens that rotate on every use,
single-use authorization codes with PKCE, revocation, and app-only bearer tokens.

The token endpoint's answers follow X's observed behaviour (docs/api.md §5.2) rather than the RFC's
letter: a used or unknown refresh token is a 400 ``invalid_request``, not ``invalid_grant``; a
confidential client without Basic auth is a 401 ``unauthorized_client``. Parameters are read from
the form body or the query string, since the official TypeScript SDK sends them in the query.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from oauthlib.oauth2.rfc6749.grant_types.authorization_code import (
    code_challenge_method_plain,
    code_challenge_method_s256,
)

from bulkrt.sandbox.problems import Reply
from bulkrt.sandbox.world import App

__all__ = ["REQUIRED_SCOPES", "Grant", "TokenStore"]

#: what the retweet endpoints require of an OAuth 2.0 user token
REQUIRED_SCOPES = frozenset({"tweet.read", "tweet.write", "users.read"})
DEFAULT_SCOPES = REQUIRED_SCOPES | {"offline.access"}
_FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True, slots=True)
class Grant:
    """What an access token stands for."""

    user_id: str
    scopes: frozenset[str]
    expires_at: float


@dataclass(frozen=True, slots=True)
class _Code:
    user_id: str
    redirect_uri: str
    challenge: str
    method: str
    scopes: frozenset[str]
    expires_at: float


def _token_error(status: int, error: str, description: str) -> Reply:
    return Reply(status, {"error": error, "error_description": description})


class TokenStore:
    """Access tokens, refresh tokens, codes and app-only tokens of one app.

    >>> from bulkrt.sandbox.world import build_world
    >>> store = TokenStore(build_world(2, 0).app, ttl=7200, code_ttl=30)
    >>> access, refresh = store.issue("42", DEFAULT_SCOPES, now=0)
    >>> store.lookup(access, now=10).user_id, store.lookup(access, now=7200) is None
    ('42', True)
    """

    def __init__(self, app: App, *, ttl: float, code_ttl: float, rotate: bool = True) -> None:
        self.app = app
        #: a refresh rotates the refresh token (else it answers without one and the old one stays)
        self.rotate = rotate
        #: every access and refresh token ever issued, for audits that no secret leaked
        self.issued: list[str] = []
        self.ttl = ttl
        self.code_ttl = code_ttl
        self._access: dict[str, Grant] = {}
        #: refresh token -> (user, scopes); removed when used, so each works once
        self._refresh: dict[str, tuple[str, frozenset[str]]] = {}
        self._codes: dict[str, _Code] = {}
        self._app_tokens: set[str] = set()
        #: refreshes answered, for inspection
        self.refreshes = 0

    # -- issuing and looking up ------------------------------------------------------------
    def issue(
        self,
        user_id: str,
        scopes: frozenset[str],
        now: float,
        *,
        ttl: float | None = None,
        access: str | None = None,
        refresh: str | None = None,
    ) -> tuple[str, str | None]:
        """Issue an access token (and a refresh token when ``offline.access`` is granted)."""
        access = access or secrets.token_urlsafe(48)
        self._access[access] = Grant(user_id, scopes, now + (self.ttl if ttl is None else ttl))
        self.issued.append(access)
        if "offline.access" not in scopes:
            return access, None
        refresh = refresh or secrets.token_urlsafe(48)
        self._refresh[refresh] = (user_id, scopes)
        self.issued.append(refresh)
        return access, refresh

    def lookup(self, token: str, now: float) -> Grant | None:
        """The grant behind a user access token, or None if unknown, revoked or expired."""
        grant = self._access.get(token)
        if grant is None or now >= grant.expires_at:
            return None
        return grant

    def is_app_token(self, token: str) -> bool:
        return token in self._app_tokens

    def authorize(
        self,
        user_id: str,
        params: Mapping[str, str],
        now: float,
    ) -> str | Reply:
        """Approve an authorization request for ``user_id``; returns the code to redirect with."""
        if params.get("response_type") != "code" or params.get("client_id") != self.app.client_id:
            return _token_error(400, "invalid_request", "Value passed for the client was invalid.")
        method = params.get("code_challenge_method", "plain")
        if "code_challenge" not in params or method not in ("plain", "S256"):
            return _token_error(400, "invalid_request", "Missing or invalid code_challenge.")
        code = secrets.token_urlsafe(32)
        self._codes[code] = _Code(
            user_id,
            params.get("redirect_uri", ""),
            params["code_challenge"],
            method,
            frozenset(params.get("scope", "").split()),
            now + self.code_ttl,
        )
        return code

    # -- the token endpoint ----------------------------------------------------------------
    def _client_ok(self, params: Mapping[str, str], authorization: str | None) -> Reply | None:
        """Client authentication: Basic for a confidential client, ``client_id`` if public."""
        if self.app.client_secret is None:
            if params.get("client_id") != self.app.client_id:
                return _token_error(
                    400, "invalid_request", "Missing required parameter [client_id]."
                )
            return None
        basic = _basic_credentials(authorization)
        if basic is None:
            return _token_error(401, "unauthorized_client", "Missing valid authorization header")
        if basic != (self.app.client_id, self.app.client_secret):
            return _token_error(401, "unauthorized_client", "Invalid client credentials")
        return None

    def token(self, params: Mapping[str, str], authorization: str | None, now: float) -> Reply:
        """Answer ``POST /2/oauth2/token`` for the refresh and authorization-code grants."""
        grant_type = params.get("grant_type")
        if grant_type not in ("refresh_token", "authorization_code"):
            return _token_error(
                400, "invalid_request", "Value passed for the grant type was invalid."
            )
        refused = self._client_ok(params, authorization)
        if refused is not None:
            return refused
        kept: str | None = None
        if grant_type == "refresh_token":
            sent = params.get("refresh_token", "")
            held = self._refresh.pop(sent, None)
            if held is None:
                return _token_error(
                    400, "invalid_request", "Value passed for the token was invalid."
                )
            user_id, scopes = held
            self.refreshes += 1
            if not self.rotate:
                self._refresh[sent] = held
                kept = sent
        else:
            code = self._codes.pop(params.get("code", ""), None)
            if (
                code is None
                or now > code.expires_at
                or code.redirect_uri != params.get("redirect_uri", "")
            ):
                return _token_error(
                    400, "invalid_request", "Value passed for the authorization code was invalid."
                )
            verifier = params.get("code_verifier", "")
            check = (
                code_challenge_method_s256 if code.method == "S256" else code_challenge_method_plain
            )
            if not check(verifier, code.challenge):
                return _token_error(
                    400, "invalid_request", "Value passed for the code verifier was invalid."
                )
            user_id, scopes = code.user_id, code.scopes
        access, refresh = self.issue(user_id, scopes, now, refresh=kept)
        if kept is not None:
            refresh = None  # the old one stays valid, and the answer carries none
        body: dict[str, object] = {
            "token_type": "bearer",
            "expires_in": int(self.ttl),
            "access_token": access,
            "scope": " ".join(sorted(scopes)),
        }
        if refresh is not None:
            body["refresh_token"] = refresh
        return Reply(200, body)

    def revoke(self, params: Mapping[str, str], authorization: str | None) -> Reply:
        """Answer ``POST /2/oauth2/revoke``: the token stops working at once."""
        refused = self._client_ok(params, authorization)
        if refused is not None:
            return refused
        token = params.get("token", "")
        self._access.pop(token, None)
        self._refresh.pop(token, None)
        return Reply(200, {"revoked": True})

    def app_token(self, params: Mapping[str, str], authorization: str | None) -> Reply:
        """Answer ``POST /oauth2/token`` (client credentials): an app-only bearer token."""
        basic = _basic_credentials(authorization)
        if params.get("grant_type") != "client_credentials" or basic != (
            self.app.consumer_key,
            self.app.consumer_secret,
        ):
            return Reply(
                403, {"errors": [{"code": 99, "message": "Unable to verify your credentials"}]}
            )
        token = "AAAAAAAAAAAAAAAAAAAAA" + secrets.token_urlsafe(60)
        self._app_tokens.add(token)
        return Reply(200, {"token_type": "bearer", "access_token": token})


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def is_form(content_type: str | None) -> bool:
    return bool(content_type) and _FORM in (content_type or "").lower()
