"""What one HTTP exchange means for an item: a final status, or what to do next (docs/api.md §6.5).

``classify`` is pure: it reads the status, headers and body of a response (or the transport
failure that replaced it) and returns an :class:`Outcome`. It never raises.

>>> out = classify(Action.UNDO, 200, {}, b'{"data":{"retweeted":false}}', "application/json")
>>> out.decision, out.status, out.retweeted
(<Decision.DONE: 'done'>, <Status.OK: 'ok'>, False)
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from http import HTTPStatus
from typing import Any

import orjson

from bulkrt.core.items import Action, ErrorDetail, Status
from bulkrt.core.ratelimits import RateLimitSnapshot, parse_rate_limits

__all__ = [
    "ALREADY_RETWEETED",
    "Decision",
    "FailureKind",
    "Outcome",
    "TransportFailure",
    "classify",
    "problem_kind",
]

#: the 400 message of a retweet of a Tweet the account has already retweeted (docs/api.md §2.2)
ALREADY_RETWEETED = "You cannot retweet a Tweet that you have already retweeted."


class Decision(StrEnum):
    """What the dispatcher does with an item after one exchange."""

    #: the item is finished; ``Outcome.status`` says how
    DONE = "done"
    #: a transient failure (5xx, network, timeout, unreadable answer); counts as an attempt
    RETRY = "retry"
    #: a 429 whose headers say when the window resets; wait, resend, no attempt spent
    WAIT_RATE_LIMIT = "wait_rate_limit"
    #: a 429 although the window had room (or no reset known): park the account
    HIDDEN_LIMIT = "hidden_limit"
    #: a 401: refresh the credentials once, then pause the account
    AUTH_FAILED = "auth_failed"
    #: a 403 about the credentials themselves (their kind, the app's permissions or plan):
    #: nothing an item or a refresh changes, so the account is paused at once
    CREDENTIALS_REFUSED = "credentials_refused"
    #: never sent: a budget shared with other processes (the multi-machine mode) is spent
    #: until ``Outcome.until``; wait, resend, no attempt spent
    HELD = "held"


#: the 403 problem types that refuse the account's credentials, not the item
CREDENTIAL_PROBLEMS = frozenset(
    {"unsupported-authentication", "oauth1-permissions", "client-forbidden"}
)


class FailureKind(StrEnum):
    """Local error kinds, used where the API gave no problem ``type``."""

    #: the connection failed or broke before a full response arrived
    NETWORK = "network"
    #: no response within the timeout
    TIMEOUT = "timeout"
    #: a response the client cannot read (not JSON, unexpected shape)
    BAD_RESPONSE = "bad_response"
    #: a 2xx whose ``retweeted`` contradicts the action (docs/api.md §2.2 "retweeted surprises")
    UNEXPECTED_STATE = "unexpected_state"
    #: an answer the API cannot have given (an HTML page, a 4xx without its problem body): a
    #: wrong API base or a proxy; the item ends ``error``, so the next run retries it
    NOT_API = "not_the_api"


@dataclass(frozen=True, slots=True)
class TransportFailure:
    """A request that got no HTTP response; the async shell builds it from its exception."""

    kind: FailureKind
    detail: str = ""
    #: the failure came before any byte of the request left (connection refused, connect
    #: timeout, credentials that could not be refreshed): proof the attempt had no effect
    unsent: bool = False


@dataclass(frozen=True, slots=True)
class Outcome:
    """The meaning of one exchange for its item."""

    decision: Decision
    #: the final status when ``decision`` is DONE, else None
    status: Status | None = None
    #: the Tweet's retweet state as the API reported it; None when unknown
    retweeted: bool | None = None
    #: a retweet found the Tweet already retweeted
    preexisting: bool = False
    #: the HTTP status, None without a response
    http: int | None = None
    error: ErrorDetail | None = None
    #: for WAIT_RATE_LIMIT: the reset the headers gave (server epoch seconds, not clamped)
    until: float | None = None
    #: the rate-limit headers of the response (every response carries them, errors included)
    limits: RateLimitSnapshot = field(default_factory=RateLimitSnapshot)
    #: no byte of the request left the machine (see `TransportFailure.unsent`)
    unsent: bool = False


def problem_kind(type_uri: str, title: str = "", http: int | None = None) -> str:
    """The error ``type`` for the ledger: the last path segment of a problem ``type`` URI.

    ``about:blank`` (and an empty type) carries no name of its own, so the title, or else the
    HTTP reason phrase, is slugged instead: ``"Too Many Requests"`` becomes
    ``too-many-requests``.
    """
    uri = type_uri.strip().split("#", 1)[0].rstrip("/")
    if uri and uri != "about:blank":
        return uri.rsplit("/", 1)[-1]
    text = title or (_reason(http) if http is not None else "")
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "about:blank"


def _reason(http: int) -> str:
    try:
        return HTTPStatus(http).phrase
    except ValueError:
        return f"http-{http}"


def _parse(body: bytes, content_type: str | None) -> Any:
    """The JSON value of a body, or None when it is absent or not JSON."""
    ctype = (content_type or "").lower()
    if ctype and "json" not in ctype:
        return None
    try:
        # orjson reads every answer the API gives, in a fraction of json's time; what it
        # refuses (NaN, a lone surrogate, bad UTF-8) is json's to read or refuse, as before. The
        # one value they read apart, an integer beyond 64 bits (a float to orjson), is nothing
        # the classification looks at.
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _problems(doc: dict[str, Any]) -> list[dict[str, Any]]:
    errors = doc.get("errors")
    if not isinstance(errors, list):
        return []
    return [e for e in errors if isinstance(e, dict)]


def _api_error(doc: Any, http: int | None) -> ErrorDetail:
    """The ledger error of a problem body, an invalid-request envelope or an ``errors`` array."""
    if not isinstance(doc, dict):
        title = _reason(http) if http is not None else "Unreadable response"
        detail = f"HTTP {http} with a body that is not JSON"
        return ErrorDetail(FailureKind.BAD_RESPONSE, title, detail)
    inner = _problems(doc)
    first = inner[0] if inner else {}
    type_uri = _text(doc.get("type")) or _text(first.get("type"))
    title = _text(doc.get("title")) or _text(first.get("title"))
    # The envelope's own detail is generic ("One or more parameters ... invalid"); the inner
    # message says what was wrong, so it wins.
    detail = (
        _text(first.get("message"))
        or _text(first.get("detail"))
        or _text(doc.get("detail"))
        or _text(doc.get("message"))
    )
    if not title and not type_uri and "code" in first:  # v1.1 form: {"errors":[{"code":88,...}]}
        title = _text(first.get("message"))
    return ErrorDetail(problem_kind(type_uri, title, http), title or _reason(http or 0), detail)


def _is_already_retweeted(doc: Any) -> bool:
    if not isinstance(doc, dict):
        return False
    messages = [_text(e.get("message")) for e in _problems(doc)] + [_text(doc.get("detail"))]
    return any("already retweeted" in m.lower() for m in messages)


def _refuses_credentials(error: ErrorDetail) -> bool:
    """Whether a 403 is about the credentials (their kind, permissions, plan or scopes)."""
    return error.type in CREDENTIAL_PROBLEMS or "oauth 2.0 scopes" in (error.detail or "").lower()


def _done(status: Status, http: int | None, **kwargs: Any) -> Outcome:
    return Outcome(Decision.DONE, status=status, http=http, **kwargs)


def _classify_success(action: Action, http: int, doc: Any, limits: RateLimitSnapshot) -> Outcome:
    data = doc.get("data") if isinstance(doc, dict) else None
    if isinstance(data, dict) and isinstance(data.get("retweeted"), bool):
        retweeted: bool = data["retweeted"]
        if retweeted is (action is Action.RETWEET):
            return _done(Status.OK, http, retweeted=retweeted, limits=limits)
        # A retweet answered retweeted:false (or an undo answered true): do not retry blindly.
        wanted = "retweeted" if action is Action.RETWEET else "not retweeted"
        error = ErrorDetail(
            FailureKind.UNEXPECTED_STATE,
            "Unexpected state",
            f"HTTP {http} reported retweeted={str(retweeted).lower()} after {action}, "
            f"wanted {wanted}",
        )
        return _done(Status.ERROR, http, retweeted=retweeted, error=error, limits=limits)
    if isinstance(doc, dict) and _problems(doc):
        # An errors-only 200: resource-not-found for a deleted or unknown Tweet (docs/api.md §2.2).
        return _done(Status.REJECTED, http, error=_api_error(doc, http), limits=limits)
    error = ErrorDetail(
        FailureKind.BAD_RESPONSE,
        "Unreadable response",
        f"HTTP {http} without data.retweeted or errors",
    )
    return Outcome(Decision.RETRY, http=http, error=error, limits=limits)


def _classify_rate_limited(http: int, doc: Any, limits: RateLimitSnapshot) -> Outcome:
    error = _api_error(doc, http)
    until = limits.exhausted_until()
    if until is not None:
        return Outcome(Decision.WAIT_RATE_LIMIT, http=http, error=error, until=until, limits=limits)
    # remaining > 0 (a limit no header shows), or no headers at all: nothing says when to retry.
    return Outcome(Decision.HIDDEN_LIMIT, http=http, error=error, limits=limits)


def _not_api(http: int, doc: Any, content_type: str | None) -> ErrorDetail | None:
    """The error of an answer the API cannot have given, or None: a redirect, an HTML page
    below 500 (a 5xx page may come from a gateway in front of the API), a 404/405 for the route
    itself, or a 4xx other than 429 without a problem body (``type``, ``title``, ``detail`` or
    ``errors``)."""
    ctype = (content_type or "").split(";")[0].strip().lower()
    if 300 <= http < 400:
        return ErrorDetail(
            FailureKind.NOT_API,
            "Not the API",
            f"HTTP {http} ({_reason(http)}): a redirect, which the API never sends",
        )
    if ctype in ("text/html", "application/xhtml+xml") and http < 500:
        return ErrorDetail(
            FailureKind.NOT_API, "Not the API", f"HTTP {http} with an HTML page ({ctype})"
        )
    if http in (404, 405) and isinstance(doc, dict) and not _problems(doc):
        # The API's not-found for an item names the resource (``resource-not-found``); a bare
        # ``about:blank`` 404/405 means the path itself does not exist at this base.
        type_uri = _text(doc.get("type")).strip()
        if type_uri in ("", "about:blank"):
            return ErrorDetail(
                FailureKind.NOT_API,
                "No such route",
                f"HTTP {http} ({_text(doc.get('title')) or _reason(http)}) for the endpoint "
                f"itself, not for an item: the API base's path is wrong",
            )
    if 400 <= http < 500 and http != 429:
        shaped = isinstance(doc, dict) and (
            isinstance(doc.get("errors"), list)
            or any(k in doc for k in ("type", "title", "detail"))
        )
        if not shaped:
            kind = "not JSON" if doc is None else "JSON without a problem"
            return ErrorDetail(
                FailureKind.NOT_API,
                "Not the API",
                f"HTTP {http} ({_reason(http)}) with a body that is {kind}",
            )
    return None


def classify(
    action: Action,
    http: int | None,
    headers: Mapping[str, str],
    body: bytes,
    content_type: str | None,
    transport_error: TransportFailure | None = None,
    *,
    lower_names: bool = False,
) -> Outcome:
    """Classify one exchange of ``action``: a response, or the failure that replaced it.
    ``lower_names``: ``headers`` answers to lower-case names (see `parse_rate_limits`)."""
    if transport_error is not None or http is None:
        failure = transport_error or TransportFailure(FailureKind.NETWORK, "no response")
        title = "Timed out" if failure.kind is FailureKind.TIMEOUT else "Network error"
        error = ErrorDetail(failure.kind, title, failure.detail)
        return Outcome(Decision.RETRY, error=error, unsent=failure.unsent)
    limits = parse_rate_limits(headers, lower=lower_names)
    doc = _parse(body, content_type)
    not_api = _not_api(http, doc, content_type)
    if not_api is not None:
        return _done(Status.ERROR, http, error=not_api, limits=limits)
    if 200 <= http < 300:
        return _classify_success(action, http, doc, limits)
    if http == 400 and action is Action.RETWEET and _is_already_retweeted(doc):
        return _done(Status.OK, http, retweeted=True, preexisting=True, limits=limits)
    if http == 429:
        return _classify_rate_limited(http, doc, limits)
    error = _api_error(doc, http)
    if http == 401:
        return Outcome(Decision.AUTH_FAILED, http=http, error=error, limits=limits)
    if http == 408 or http >= 500:
        return Outcome(Decision.RETRY, http=http, error=error, limits=limits)
    if http == 403 and _refuses_credentials(error):
        return Outcome(Decision.CREDENTIALS_REFUSED, http=http, error=error, limits=limits)
    if 400 <= http < 500:
        return _done(Status.REJECTED, http, error=error, limits=limits)
    # 1xx/3xx: nothing a resend would change; the next run tries again.
    return _done(Status.ERROR, http, error=error, limits=limits)
