"""Outcome classification: one row per response form of docs/api.md §2-3, with its bodies."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from bulkrt.core.items import Action, Status
from bulkrt.core.outcome import (
    ALREADY_RETWEETED,
    Decision,
    FailureKind,
    TransportFailure,
    classify,
    problem_kind,
)

RT, UNDO = Action.RETWEET, Action.UNDO
JSON = "application/json; charset=utf-8"
PROBLEM = "application/problem+json"
HTML = "text/html"
LIMITS = {"x-rate-limit-limit": "50", "x-rate-limit-remaining": "49", "x-rate-limit-reset": "1700"}
SPENT = {"x-rate-limit-limit": "50", "x-rate-limit-remaining": "0", "x-rate-limit-reset": "1700"}

INVALID_ENVELOPE = (
    b'{"errors":[{"parameters":{"tweet_id":["abc"]},"message":"The `tweet_id` parameter value '
    b'[abc] is not valid"}],"title":"Invalid Request","detail":"One or more parameters to your '
    b'request was invalid.","type":"https://api.twitter.com/2/problems/invalid-request"}'
)
ALREADY = (
    b'{"errors":[{"message":"You cannot retweet a Tweet that you have already retweeted."}],'
    b'"title":"Invalid Request","detail":"One or more parameters to your request was invalid.",'
    b'"type":"https://api.twitter.com/2/problems/invalid-request"}'
)
NOT_FOUND_200 = (
    b'{"errors":[{"value":"20","detail":"Could not find tweet with id: [20].","title":'
    b'"Not Found Error","resource_type":"tweet","parameter":"id","resource_id":"20",'
    b'"type":"https://api.twitter.com/2/problems/resource-not-found"}]}'
)
NOT_FOUND_404 = (
    b'{"title":"Not Found Error","type":"https://api.twitter.com/2/problems/resource-not-found",'
    b'"status":404,"detail":"Could not find tweet with id: [20]."}'
)
FORBIDDEN = b'{\n  "title": "Forbidden",\n  "type": "about:blank",\n  "status": 403,\n  "detail": "Forbidden"\n}'  # noqa: E501 - the 93-byte pretty body of docs/api.md §3.1
UNSUPPORTED_AUTH = (
    b'{"title":"Unsupported Authentication","detail":"Authenticating with OAuth 2.0 '
    b"Application-Only is forbidden for this endpoint.  Supported authentication types are "
    b'[OAuth 1.0a User Context, OAuth 2.0 User Context].","type":'
    b'"https://api.twitter.com/2/problems/unsupported-authentication","status":403}'
)
OAUTH1_PERMISSIONS = (
    b'{"title":"Forbidden","status":403,"detail":"Your client app is not configured with the '
    b'appropriate oauth1 app permissions for this endpoint.","type":'
    b'"https://api.twitter.com/2/problems/oauth1-permissions"}'
)
CLIENT_FORBIDDEN = (
    b'{"client_id":"101010101","required_enrollment":"Standard Basic","registration_url":'
    b'"https://developer.twitter.com/en/account","title":"Client Forbidden","detail":"This '
    b"request must be made using an approved developer account that is enrolled in the "
    b'requested endpoint. Learn more by visiting our documentation.","reason":'
    b'"client-not-enrolled","type":"https://api.x.com/2/problems/client-forbidden"}'
)
UNAUTHORIZED = b'{"title":"Unauthorized","type":"about:blank","status":401,"detail":"Unauthorized"}'
TOO_MANY = (
    b'{"title":"Too Many Requests","type":"about:blank","status":429,"detail":"Too Many Requests"}'
)
CODE_88 = b'{"errors":[{"code":88,"message":"Rate limit exceeded"}]}'
USAGE_CAPPED = (
    b'{"title":"Usage capped","detail":"Usage cap exceeded: Monthly product cap","type":'
    b'"https://api.twitter.com/2/problems/usage-capped","period":"Monthly","scope":"Product"}'
)
SERVER_ERROR = (
    b'{"title":"Internal Server Error","type":"about:blank","status":500,"detail":"oops"}'
)
UNAVAILABLE = (
    b'{"title":"Service Unavailable","type":"about:blank","status":503,'
    b'"detail":"Service Unavailable"}'
)
DATA_AND_ERRORS = (
    b'{"data":{"retweeted":true},"errors":[{"resource_id":"456","resource_type":"tweet",'
    b'"title":"Not Found Error","detail":"Could not find tweet with id: [456].",'
    b'"type":"https://api.x.com/2/problems/resource-not-found"}]}'
)


@dataclass(frozen=True)
class Row:
    """One response form and what it must mean."""

    case: str
    action: Action
    http: int | None
    body: bytes
    ctype: str | None
    decision: Decision
    status: Status | None = None
    retweeted: bool | None = None
    preexisting: bool = False
    error_type: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    failure: TransportFailure | None = None


ROWS = [
    Row("retweet created", RT, 200, b'{"data":{"retweeted":true}}', JSON, Decision.DONE,
        Status.OK, True),
    Row("retweet with id (<=2.166)", RT, 200, b'{"data":{"id":"1346889436626259968",'
        b'"retweeted":true}}', JSON, Decision.DONE, Status.OK, True),
    Row("retweet with rest_id (2.167)", RT, 200, b'{"data":{"rest_id":"20","retweeted":true}}',
        JSON, Decision.DONE, Status.OK, True),
    Row("idempotent 200 on already retweeted", RT, 200, b'{"data":{"retweeted":true}}', JSON,
        Decision.DONE, Status.OK, True),
    Row("already retweeted 400", RT, 400, ALREADY, PROBLEM, Decision.DONE, Status.OK, True,
        preexisting=True),
    Row("undo done", UNDO, 200, b'{"data":{"retweeted":false}}', JSON, Decision.DONE,
        Status.OK, False),
    Row("undo of nothing (no-op)", UNDO, 200, b'{"data":{"retweeted":false}}', JSON,
        Decision.DONE, Status.OK, False),
    Row("errors-only 200: tweet not found", RT, 200, NOT_FOUND_200, JSON, Decision.DONE,
        Status.REJECTED, error_type="resource-not-found"),
    Row("errors-only 200 on undo", UNDO, 200, NOT_FOUND_200, JSON, Decision.DONE,
        Status.REJECTED, error_type="resource-not-found"),
    Row("404 problem", RT, 404, NOT_FOUND_404, PROBLEM, Decision.DONE, Status.REJECTED,
        error_type="resource-not-found"),
    Row("200 with data and errors", RT, 200, DATA_AND_ERRORS, JSON, Decision.DONE, Status.OK,
        True),
    Row("retweet answered retweeted:false", RT, 200, b'{"data":{"retweeted":false}}', JSON,
        Decision.DONE, Status.ERROR, False, error_type="unexpected_state"),
    Row("400 invalid request", RT, 400, INVALID_ENVELOPE, PROBLEM, Decision.DONE,
        Status.REJECTED, error_type="invalid-request"),
    Row("already-retweeted message on undo is not success", UNDO, 400, ALREADY, PROBLEM,
        Decision.DONE, Status.REJECTED, error_type="invalid-request"),
    Row("403 generic, pretty-printed", RT, 403, FORBIDDEN, PROBLEM, Decision.DONE,
        Status.REJECTED, error_type="forbidden"),
    Row("403 as application/json", RT, 403, FORBIDDEN, JSON, Decision.DONE, Status.REJECTED,
        error_type="forbidden"),
    Row("403 unsupported-authentication", RT, 403, UNSUPPORTED_AUTH, PROBLEM,
        Decision.CREDENTIALS_REFUSED, error_type="unsupported-authentication"),
    Row("403 oauth1-permissions", UNDO, 403, OAUTH1_PERMISSIONS, PROBLEM,
        Decision.CREDENTIALS_REFUSED, error_type="oauth1-permissions"),
    Row("403 client-forbidden (api.x.com type)", RT, 403, CLIENT_FORBIDDEN, PROBLEM,
        Decision.CREDENTIALS_REFUSED, error_type="client-forbidden"),
    Row("401", RT, 401, UNAUTHORIZED, PROBLEM, Decision.AUTH_FAILED,
        error_type="unauthorized"),
    Row("429 problem form, window spent", RT, 429, TOO_MANY, PROBLEM,
        Decision.WAIT_RATE_LIMIT, error_type="too-many-requests", headers=tuple(SPENT.items())),
    Row("429 v1.1 code 88 form, window spent", RT, 429, CODE_88, JSON,
        Decision.WAIT_RATE_LIMIT, error_type="rate-limit-exceeded",
        headers=tuple(SPENT.items())),
    Row("429 while remaining > 0: hidden limit", RT, 429, TOO_MANY, PROBLEM,
        Decision.HIDDEN_LIMIT, error_type="too-many-requests", headers=tuple(LIMITS.items())),
    Row("429 without headers", UNDO, 429, TOO_MANY, PROBLEM, Decision.HIDDEN_LIMIT,
        error_type="too-many-requests"),
    Row("429 usage-capped", RT, 429, USAGE_CAPPED, PROBLEM, Decision.HIDDEN_LIMIT,
        error_type="usage-capped", headers=tuple(LIMITS.items())),
    Row("429 with the user 24-hour window spent", RT, 429, TOO_MANY, PROBLEM,
        Decision.WAIT_RATE_LIMIT, error_type="too-many-requests",
        headers=tuple(LIMITS.items()) + (("x-user-limit-24hour-remaining", "0"),
                                         ("x-user-limit-24hour-reset", "90000"))),
    Row("500 problem", RT, 500, SERVER_ERROR, PROBLEM, Decision.RETRY,
        error_type="internal-server-error"),
    Row("503 problem", UNDO, 503, UNAVAILABLE, PROBLEM, Decision.RETRY,
        error_type="service-unavailable"),
    Row("502 HTML gateway page", RT, 502, b"<html><body>Bad Gateway</body></html>", HTML,
        Decision.RETRY, error_type="bad_response"),
    Row("504 empty body", RT, 504, b"", None, Decision.RETRY, error_type="bad_response"),
    Row("200 non-JSON garbage", RT, 200, b"\xff\xfe garbage", JSON, Decision.RETRY,
        error_type="bad_response"),
    Row("200 JSON without data", RT, 200, b'{"data":{}}', JSON, Decision.RETRY,
        error_type="bad_response"),
    Row("400 HTML (a proxy, not the API: error, retried next run)", RT, 400, b"<html>bad</html>",
        HTML, Decision.DONE, Status.ERROR, error_type="not_the_api"),
    Row("404 plain text (a wrong API base)", UNDO, 404, b"404: Not Found", "text/plain",
        Decision.DONE, Status.ERROR, error_type="not_the_api"),
    Row("404 about:blank for the route (a wrong base path)", RT, 404,
        b'{"title":"Not Found Error","type":"about:blank","status":404}', PROBLEM, Decision.DONE,
        Status.ERROR, error_type="not_the_api"),
    Row("403 JSON without a problem", RT, 403, b'{"ok":false}', JSON, Decision.DONE,
        Status.ERROR, error_type="not_the_api"),
    Row("200 HTML page (a captive portal)", RT, 200, b"<html>hi</html>", HTML, Decision.DONE,
        Status.ERROR, error_type="not_the_api"),
    Row("network error", RT, None, b"", None, Decision.RETRY, error_type="network",
        failure=TransportFailure(FailureKind.NETWORK, "connection reset")),
    Row("timeout", UNDO, None, b"", None, Decision.RETRY, error_type="timeout",
        failure=TransportFailure(FailureKind.TIMEOUT, "read timed out after 30 s")),
]  # fmt: skip


@pytest.mark.parametrize("row", ROWS, ids=[r.case for r in ROWS])
def test_classify(row: Row) -> None:
    """Each response form of docs/api.md §2-3 gets its documented status or decision."""
    out = classify(row.action, row.http, dict(row.headers), row.body, row.ctype, row.failure)
    assert out.decision is row.decision
    assert out.status is row.status
    assert out.retweeted is row.retweeted
    assert out.preexisting is row.preexisting
    assert out.http == row.http
    assert (out.error.type if out.error else None) == row.error_type


def test_invalid_request_detail_is_the_inner_message() -> None:
    """The ledger detail of an invalid-request names what was wrong, not the generic line."""
    out = classify(RT, 400, {}, INVALID_ENVELOPE, PROBLEM)
    assert out.error is not None
    assert out.error.title == "Invalid Request"
    assert out.error.detail == "The `tweet_id` parameter value [abc] is not valid"


def test_problem_fields_reach_the_ledger_error() -> None:
    """type, title and detail of a problem body are carried as they came."""
    out = classify(RT, 403, {}, UNSUPPORTED_AUTH, PROBLEM)
    assert out.error is not None
    assert out.error.title == "Unsupported Authentication"
    assert (out.error.detail or "").startswith("Authenticating with OAuth 2.0 Application-Only")


def test_wait_until_is_the_latest_spent_reset() -> None:
    """A 429 waits for the latest reset among the windows that report nothing remaining."""
    headers = SPENT | {"x-user-limit-24hour-remaining": "0", "x-user-limit-24hour-reset": "9000"}
    out = classify(RT, 429, headers, TOO_MANY, PROBLEM)
    assert out.until == 9000.0
    assert out.limits.window is not None and out.limits.window.remaining == 0


def test_headers_are_kept_on_every_response() -> None:
    """Errors carry their rate-limit headers too, so the scheduler learns from them."""
    out = classify(RT, 503, LIMITS, UNAVAILABLE, PROBLEM)
    assert out.limits.window is not None and out.limits.window.remaining == 49


def test_already_retweeted_constant_matches_the_spec_body() -> None:
    """The already-retweeted message is the one field reports show."""
    assert ALREADY_RETWEETED.encode() in ALREADY


@pytest.mark.parametrize(
    ("type_uri", "title", "http", "kind"),
    [
        ("https://api.twitter.com/2/problems/invalid-request", "", 400, "invalid-request"),
        ("https://api.x.com/2/problems/client-forbidden", "", 403, "client-forbidden"),
        ("https://api.x.com/2/problems/usage-capped/", "", 429, "usage-capped"),
        ("https://developer.x.com/en/support/x-api/error-troubleshooting#invalid-request", "",
         400, "error-troubleshooting"),
        ("about:blank", "Too Many Requests", 429, "too-many-requests"),
        ("about:blank", "", 503, "service-unavailable"),
        ("", "", 599, "http-599"),
    ],
)  # fmt: skip
def test_problem_kind(type_uri: str, title: str, http: int, kind: str) -> None:
    """Problem types match on the last path segment; about:blank falls back to the title."""
    assert problem_kind(type_uri, title, http) == kind
