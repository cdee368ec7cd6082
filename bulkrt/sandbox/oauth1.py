"""OAuth 1.0a HMAC-SHA1 verification of user-context requests, done by oauthlib's resource endpoint.

The signature base string is rebuilt from the request as received (scheme, Host, path, query), so a
client that signed ``https://api.twitter.com/...`` and one that signed ``http://127.0.0.1:8787/...``
are both checked against what they actually called. JSON bodies are not part of the signature
(RFC 5849 §3.4.1.3.1); oauthlib includes a body only when it is form-encoded. The timestamp window
and the nonce memory run on the sandbox clock, not the wall clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from oauthlib.common import Request
from oauthlib.oauth1 import RequestValidator, ResourceEndpoint

__all__ = ["OAuth1Token", "OAuth1Verifier", "Verified"]

# oauthlib checks the timestamp against time.time(); the sandbox checks it against its own clock in
# validate_timestamp_and_nonce, so oauthlib's own window is opened wide.
_NO_LIBRARY_WINDOW = 10**12


@dataclass(frozen=True, slots=True)
class OAuth1Token:
    """An access token the sandbox issued: whose it is, under which consumer key."""

    user_id: str
    consumer_key: str
    secret: str


@dataclass(frozen=True, slots=True)
class Verified:
    """The verdict on one request: the user when valid, else why not."""

    user_id: str | None
    consumer_key: str | None
    reason: str


class _Validator(RequestValidator):
    """Answers oauthlib's questions from the sandbox's credentials and clock."""

    allowed_signature_methods = ("HMAC-SHA1",)
    enforce_ssl = False
    timestamp_lifetime = _NO_LIBRARY_WINDOW
    dummy_client = "dummy-consumer-key"
    dummy_access_token = "dummy-access-token"

    def __init__(self, verifier: OAuth1Verifier) -> None:
        super().__init__()
        self._v = verifier

    # Format checks: accept what real clients send (tokens contain '-', nonces vary in length).
    def check_client_key(self, client_key: str) -> bool:
        return 0 < len(client_key) <= 256

    def check_access_token(self, request_token: str) -> bool:
        return 0 < len(request_token) <= 256

    def check_nonce(self, nonce: str) -> bool:
        return 0 < len(nonce) <= 256

    def validate_timestamp_and_nonce(
        self,
        client_key: str,
        timestamp: str,
        nonce: str,
        request: Request,
        request_token: str | None = None,
        access_token: str | None = None,
    ) -> bool:
        now = self._v.now
        if abs(now - int(timestamp)) > self._v.skew:
            request.validator_log["reason"] = "timestamp outside the allowed window"
            return False
        if not self._v.remember_nonce((client_key, access_token, nonce, timestamp), now):
            request.validator_log["reason"] = "nonce already used"
            return False
        return True

    def validate_client_key(self, client_key: str, request: Request) -> bool:
        return client_key in self._v.consumers

    def validate_access_token(self, client_key: str, token: str, request: Request) -> bool:
        issued = self._v.tokens.get(token)
        return issued is not None and issued.consumer_key == client_key

    def validate_realms(self, *args: Any, **kwargs: Any) -> bool:
        return True

    def get_client_secret(self, client_key: str, request: Request) -> str:
        return self._v.consumers.get(client_key, "dummy-consumer-secret")

    def get_access_token_secret(self, client_key: str, token: str, request: Request) -> str:
        issued = self._v.tokens.get(token)
        return issued.secret if issued is not None else "dummy-token-secret"


class OAuth1Verifier:
    """Checks ``Authorization: OAuth ...`` headers against known consumers and access tokens.

    >>> v = OAuth1Verifier(consumers={"ck": "cs"}, tokens={}, skew=300)
    >>> url = "http://127.0.0.1/2/users/1/retweets"
    >>> v.verify("POST", url, {"Authorization": "OAuth"}, b"", now=0).reason
    'malformed Authorization header'
    >>> v.verify("POST", url, {"Authorization": 'OAuth oauth_consumer_key="ck"'}, b"", now=0).reason
    'malformed or missing OAuth parameters'
    """

    def __init__(
        self, consumers: dict[str, str], tokens: dict[str, OAuth1Token], skew: float
    ) -> None:
        #: consumer key -> consumer secret
        self.consumers = consumers
        #: access token -> its owner and secret
        self.tokens = tokens
        self.skew = skew
        #: the time of the request being verified (set for the duration of ``verify``)
        self.now = 0.0
        self._nonces: set[tuple[Any, ...]] = set()
        self._nonce_expiry: deque[tuple[float, tuple[Any, ...]]] = deque()
        self._endpoint = ResourceEndpoint(_Validator(self))

    def remember_nonce(self, key: tuple[Any, ...], now: float) -> bool:
        """Record a nonce; False when it was already used inside the timestamp window."""
        while self._nonce_expiry and self._nonce_expiry[0][0] < now:
            self._nonces.discard(self._nonce_expiry.popleft()[1])
        if key in self._nonces:
            return False
        self._nonces.add(key)
        # a nonce can only be replayed while its timestamp is inside the window
        self._nonce_expiry.append((now + 2 * self.skew, key))
        return True

    def verify(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes, *, now: float
    ) -> Verified:
        """Verify one request; ``url`` is scheme://host/path?query as the client called it."""
        self.now = now
        text = body.decode("utf-8", "replace")
        try:
            valid, request = self._endpoint.validate_protected_resource_request(
                url, http_method=method, body=text, headers=dict(headers)
            )
        except ValueError:  # oauthlib's parser gives up on a header it cannot split
            return Verified(None, None, "malformed Authorization header")
        if valid:
            token = self.tokens[request.resource_owner_key]
            return Verified(token.user_id, token.consumer_key, "ok")
        if request is None:
            return Verified(None, None, "malformed Authorization header")
        log = request.validator_log
        if "reason" in log:
            reason = log["reason"]
        elif "signature" not in log:
            reason = "malformed or missing OAuth parameters"
        elif not log.get("client"):
            reason = "unknown consumer key"
        elif not log.get("resource_owner"):
            reason = "unknown access token"
        else:
            reason = "signature mismatch"
        return Verified(None, None, reason)
