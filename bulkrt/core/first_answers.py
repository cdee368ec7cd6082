"""Whether the first answers of a run prove a misconfiguration: the API base is wrong or nothing
answers there, so every further request would be wasted (and a 404 page would end items
``rejected`` for good).

`FirstAnswers` watches outcomes until one proves the API is there, then stops watching. Before
that, proof of a misconfiguration is:

- one answer that cannot have come from the API: an HTML page or a 4xx without the API's
  problem body (`bulkrt.core.outcome` classifies those as `FailureKind.NOT_API`, status ``error``);
- no connection at all (refused, or the host name does not resolve) for every account tried,
  counting at least `CONNECT_PROOF` accounts (or all of them, when the job has fewer).

A timeout or a connection that breaks after it was made proves nothing (a slow or flaky API
looks like that), nor does a 5xx (a gateway may answer for the API). Any other answer proves the
API is there: a success, a problem body, a 401, a 429.

An OAuth 2.0 account whose token must be refreshed first sends the refresh to the token
endpoint at the same base (`observe_refresh`): a refresh that fails to connect counts like a
request that did, and an answer that cannot be the token endpoint's (an HTML page, a 4xx
without an OAuth error code) proves the base wrong like one to a request.

>>> from bulkrt.core.items import ErrorDetail
>>> from bulkrt.core.outcome import Decision, Outcome
>>> watch = FirstAnswers(["a", "b"])
>>> refused = Outcome(Decision.RETRY, error=ErrorDetail("network", "Network error",
...     "ClientConnectorError: Cannot connect to host 127.0.0.1:9 [Connection refused]"))
>>> watch.observe("a", refused) is None
True
>>> watch.observe("b", refused).cause
'no connection to the API base'
>>> FirstAnswers(["c"]).observe_refresh("c", 404, "HTTP 404 with an HTML page (text/html)",
...     not_api=True).detail
'OAuth 2.0 token refresh: HTTP 404 with an HTML page (text/html)'
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from bulkrt.core.outcome import FailureKind, Outcome

__all__ = ["CONNECT_PROOF", "FirstAnswers", "Misconfiguration"]

#: accounts whose first requests must all fail to connect before that proves the base wrong
CONNECT_PROOF = 3
#: how a transport failure that never reached a server starts (`bulkrt.shell.client` names the
#: aiohttp exception first): refused, unresolvable host, TLS handshake refused
_NO_CONNECTION = ("ClientConnector", "Cannot connect")


@dataclass(frozen=True, slots=True)
class Misconfiguration:
    """What proves the run cannot reach the API."""

    #: the kind of proof, for the operator: what went wrong
    cause: str
    #: one example answer or failure, as the ledger's error detail gives it
    detail: str


class FirstAnswers:
    """Watches a run's outcomes until one shows the API answering."""

    def __init__(self, accounts: Collection[str]) -> None:
        #: how many accounts must fail to connect: all of them, up to `CONNECT_PROOF`
        self._needed = max(1, min(len(accounts), CONNECT_PROOF))
        self._unreachable: set[str] = set()
        #: an answer proved the API is there; nothing is watched any more
        self.proven = False

    def observe(self, account: str, outcome: Outcome) -> Misconfiguration | None:
        """Take one outcome of ``account``; return the proof once the answers show one."""
        if self.proven:
            return None
        error = outcome.error
        if outcome.http is None:
            if error is None or error.type != FailureKind.NETWORK:
                return None
            return self._unreachable_proof(account, error.detail or "", "the first request")
        if error is not None and error.type == FailureKind.NOT_API:
            return Misconfiguration("an answer that is not the X API's", error.detail or "")
        if outcome.http >= 500:
            return None
        self.proven = True
        return None

    def observe_refresh(
        self, account: str, http: int | None, detail: str, *, not_api: bool
    ) -> Misconfiguration | None:
        """Take a failed OAuth 2.0 token refresh of ``account``: its HTTP status (None: no
        answer), what it got, and whether the answer cannot be a token endpoint's; return the
        proof once the failures show one."""
        if self.proven:
            return None
        if http is None:
            return self._unreachable_proof(account, detail, "the first OAuth 2.0 token refresh")
        if not_api:
            return Misconfiguration(
                "an answer that is not the X API's", f"OAuth 2.0 token refresh: {detail}"
            )
        if http < 500:
            self.proven = True  # the token endpoint answered in its own shape
        return None

    def _unreachable_proof(self, account: str, detail: str, what: str) -> Misconfiguration | None:
        """Count ``account`` unreachable when ``detail`` says no connection was made; the proof
        once enough accounts are."""
        if not detail.startswith(_NO_CONNECTION):
            return None
        self._unreachable.add(account)
        if len(self._unreachable) < self._needed:
            return None
        dns = "DNS" in detail.split(":", 1)[0]
        return Misconfiguration(
            "the API base's host name does not resolve" if dns else "no connection to the API base",
            f"{detail} ({what} of {len(self._unreachable)} account(s))",
        )
