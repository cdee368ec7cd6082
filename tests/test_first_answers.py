"""Invariants of the early stop, over seeded random answer sequences: a run is stopped only on
answers that cannot have come from the API, never after the API has answered, and an answer that
is not the API's never ends an item ``rejected``.

CI runs a few seeds; run many by hand with ``BULKRT_SEEDS=2000 pytest tests/test_first_answers.py``.
"""

from __future__ import annotations

import os
import random

import pytest

from bulkrt.core.first_answers import CONNECT_PROOF, FirstAnswers
from bulkrt.core.items import Action, Status
from bulkrt.core.limit_evidence import teachable
from bulkrt.core.outcome import FailureKind, Outcome, TransportFailure, classify
from bulkrt.core.ratelimits import RateLimitSnapshot

SEEDS = range(int(os.environ.get("BULKRT_SEEDS", "25")))
PROBLEM = "application/problem+json"
HEADERS = {"x-rate-limit-limit": "15", "x-rate-limit-remaining": "14", "x-rate-limit-reset": "9"}

#: (http, body, content type, whether only the API can have sent it, whether it is not the API's)
ANSWERS: list[tuple[int | None, bytes, str | None, bool, bool]] = [
    (200, b'{"data":{"retweeted":true}}', "application/json", True, False),
    (200, b'{"errors":[{"type":"https://api.x.com/2/problems/resource-not-found"}]}',
     "application/json", True, False),
    (403, b'{"title":"Forbidden","type":"about:blank","detail":"x"}', PROBLEM, True, False),
    (429, b'{"title":"Too Many Requests","type":"about:blank"}', PROBLEM, True, False),
    (401, b'{"title":"Unauthorized","type":"about:blank"}', PROBLEM, True, False),
    (500, b'{"title":"Internal Server Error","type":"about:blank"}', PROBLEM, False, False),
    (502, b"<html>Bad Gateway</html>", "text/html", False, False),
    (504, b"", None, False, False),
    (404, b"404: Not Found", "text/plain", False, True),
    (404, b'{"title":"Not Found Error","type":"about:blank","status":404}', PROBLEM, False, True),
    (405, b'{"title":"Method Not Allowed","type":"about:blank"}', PROBLEM, False, True),
    (403, b"<html>Forbidden by proxy</html>", "text/html", False, True),
    (400, b'{"ok":false}', "application/json", False, True),
    (200, b"<html>captive portal</html>", "text/html", False, True),
    (None, b"", None, False, False),  # a timeout
    (None, b"", None, False, False),  # a refused connection
]  # fmt: skip


#: failed OAuth 2.0 token refreshes as `bulkrt.shell.credentials.RefreshFailed` reports them: (http,
#: detail, not a token endpoint's answer, only the API can have sent it)
REFRESHES: list[tuple[int | None, str, bool, bool]] = [
    (None, "ClientConnectorError: Cannot connect to host h:1", False, False),
    (None, "ClientConnectorDNSError: Cannot connect to host h:1", False, False),
    (None, "ServerDisconnectedError: Server disconnected", False, False),
    (404, "HTTP 404 with an HTML page (text/html)", True, False),
    (401, "HTTP 401 with a body that is not JSON: not a token endpoint's answer", True, False),
    (403, "invalid_client", False, True),
    (503, "HTTP 503", False, False),
]


def _outcome(index: int) -> Outcome:
    http, body, ctype, _, _ = ANSWERS[index]
    if http is None:
        failure = (
            TransportFailure(FailureKind.TIMEOUT, "no answer within the timeout")
            if index == len(ANSWERS) - 2
            else TransportFailure(
                FailureKind.NETWORK, "ClientConnectorError: Cannot connect to host h:1"
            )
        )
        return classify(Action.RETWEET, None, {}, b"", None, failure)
    return classify(Action.RETWEET, http, HEADERS, body, ctype)


@pytest.mark.parametrize("seed", SEEDS)
def test_the_early_stop_never_follows_an_api_answer_and_never_rejects(seed: int) -> None:
    """Over a random sequence of answers and failed token refreshes from random accounts: the
    proof comes only from a non-API answer or from refused connections (of requests or
    refreshes) of CONNECT_PROOF accounts (all, when fewer), only while no API answer has come; a
    non-API answer is an `error`, never `rejected`, and teaches no limit."""
    rng = random.Random(seed)
    accounts = [f"a{n}" for n in range(rng.randint(1, 6))]
    watch = FirstAnswers(accounts)
    api_seen = False
    refused: set[str] = set()
    for _ in range(rng.randint(1, 30)):
        account = rng.choice(accounts)
        if rng.random() < 0.3:
            http, detail, not_api, only_api = rng.choice(REFRESHES)
            if detail.startswith("ClientConnector"):
                refused.add(account)
            proof = watch.observe_refresh(account, http, detail, not_api=not_api)
        else:
            index = rng.randrange(len(ANSWERS))
            outcome = _outcome(index)
            _, _, _, only_api, not_api = ANSWERS[index]
            if not_api:
                assert outcome.status is Status.ERROR
                assert teachable(outcome) == RateLimitSnapshot()
            if outcome.http is None and index == len(ANSWERS) - 1:
                refused.add(account)
            proof = watch.observe(account, outcome)
        if proof is not None:
            assert not api_seen
            connect_proof = len(refused) >= min(len(accounts), CONNECT_PROOF)
            assert not_api or connect_proof
            return
        assert not (not_api and not api_seen)  # a non-API answer first is always proof
        api_seen = api_seen or only_api
