"""The API's error bodies (docs/api.md §3), as plain values: status, JSON body and content type."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ALREADY_RETWEETED", "Reply", "Problems"]

ALREADY_RETWEETED = "You cannot retweet a Tweet that you have already retweeted."
PROBLEM_JSON = "application/problem+json"
JSON = "application/json; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer before it is put on the wire."""

    status: int
    #: the JSON body, or None for no body
    body: dict[str, Any] | None
    content_type: str = JSON
    #: rendered with 2-space indentation, as production sends top-level problems
    pretty: bool = False
    headers: dict[str, str] = field(default_factory=dict)


class Problems:
    """Builds problem bodies with ``type`` URIs on a configurable host.

    >>> Problems().unauthorized().status
    401
    """

    def __init__(self, host: str = "api.twitter.com") -> None:
        self._base = f"https://{host}/2/problems/"

    def _problem(
        self, status: int, body: dict[str, Any], content_type: str = PROBLEM_JSON
    ) -> Reply:
        return Reply(status, body, content_type, pretty=True)

    def generic(self, status: int, title: str, detail: str | None = None) -> Reply:
        """The ``about:blank`` family: 401, generic 403, 429, 5xx."""
        return self._problem(
            status,
            {"title": title, "type": "about:blank", "status": status, "detail": detail or title},
        )

    def unauthorized(self) -> Reply:
        return self.generic(401, "Unauthorized")

    def forbidden(self, detail: str = "Forbidden") -> Reply:
        return self.generic(403, "Forbidden", detail)

    def invalid_request(
        self, message: str, parameters: dict[str, list[str]] | None = None
    ) -> Reply:
        """The 400 invalid-request envelope (no top-level ``status`` in field samples)."""
        error: dict[str, Any] = {"parameters": parameters} if parameters else {}
        error["message"] = message
        return self._problem(
            400,
            {
                "errors": [error],
                "title": "Invalid Request",
                "detail": "One or more parameters to your request was invalid.",
                "type": self._base + "invalid-request",
            },
        )

    def already_retweeted(self) -> Reply:
        return self._problem(
            400,
            {
                "errors": [{"message": ALREADY_RETWEETED}],
                "title": "Invalid Request",
                "detail": "One or more parameters to your request was invalid.",
                "type": self._base + "invalid-request",
            },
        )

    def not_found_error(self, tweet_id: str) -> dict[str, Any]:
        """One resource-not-found error object, as carried in a 200's ``errors``."""
        return {
            "value": tweet_id,
            "detail": f"Could not find tweet with id: [{tweet_id}].",
            "title": "Not Found Error",
            "resource_type": "tweet",
            "parameter": "id",
            "resource_id": tweet_id,
            "type": self._base + "resource-not-found",
        }

    def not_found_200(self, tweet_id: str) -> Reply:
        return Reply(200, {"errors": [self.not_found_error(tweet_id)]})

    def not_found_404(self, tweet_id: str) -> Reply:
        return self._problem(
            404,
            {
                "title": "Not Found Error",
                "type": self._base + "resource-not-found",
                "status": 404,
                "detail": f"Could not find tweet with id: [{tweet_id}].",
            },
        )

    def unsupported_authentication(self) -> Reply:
        return self._problem(
            403,
            {
                "title": "Unsupported Authentication",
                "detail": "Authenticating with OAuth 2.0 Application-Only is forbidden for this "
                "endpoint.  Supported authentication types are [OAuth 1.0a User Context, "
                "OAuth 2.0 User Context].",
                "type": self._base + "unsupported-authentication",
                "status": 403,
            },
        )

    def oauth1_permissions(self) -> Reply:
        return self._problem(
            403,
            {
                "title": "Forbidden",
                "status": 403,
                "detail": "Your client app is not configured with the appropriate oauth1 app "
                "permissions for this endpoint.",
                "type": self._base + "oauth1-permissions",
            },
        )

    def client_forbidden(self, client_id: str) -> Reply:
        return self._problem(
            403,
            {
                "client_id": client_id,
                "required_enrollment": "Standard Basic",
                "registration_url": "https://developer.twitter.com/en/account",
                "title": "Client Forbidden",
                "detail": "This request must be made using an approved developer account that is "
                "enrolled in the requested endpoint. Learn more by visiting our documentation.",
                "reason": "client-not-enrolled",
                "type": self._base + "client-forbidden",
            },
        )

    def too_many_requests(self) -> Reply:
        return self.generic(429, "Too Many Requests")

    def too_many_requests_v1(self) -> Reply:
        return Reply(429, {"errors": [{"code": 88, "message": "Rate limit exceeded"}]})

    def usage_capped(self) -> Reply:
        return self._problem(
            429,
            {
                "title": "UsageCapExceeded",
                "detail": "Usage cap exceeded: Daily request limit exceeded",
                "type": self._base + "usage-capped",
                "period": "Daily",
                "scope": "Account",
                "status": 429,
            },
        )

    def server_error(self, status: int) -> Reply:
        titles = {500: "Internal Server Error", 503: "Service Unavailable"}
        return self.generic(status, titles.get(status, "Server Error"))
