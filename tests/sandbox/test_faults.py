"""Error formatting and fault injection over real sockets (docs/api.md checklist items 29-31):
problem bodies, the API's extra headers, 5xx in JSON, HTML and empty forms, resets before and after
the request takes effect, stalls, partial answers, and seeded reproducibility."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from bulkrt.sandbox.config import Endpoint, FaultKind
from bulkrt.sandbox.faults import FaultPlan
from tests.sandbox.conftest import Api, MakeApi

TWEET = "20"


async def script(api: Api, kind: str, count: int = 1, **match: str) -> None:
    answer = await api.call(
        "POST", "/__sandbox/faults", auth="none", json_body={"kind": kind, "count": count, **match}
    )
    assert answer.status == 200, answer.text


class TestErrorFormat:
    async def test_problems_are_pretty_printed_problem_json(self, api: Api) -> None:
        """Error bodies are application/problem+json indented by two spaces, as in production."""
        user = api.users[0]
        await api.retweet(user, TWEET)
        answer = await api.retweet(user, TWEET)
        assert answer.headers["Content-Type"] == "application/problem+json"
        assert answer.text == json.dumps(answer.json, indent=2)
        assert answer.text.startswith('{\n  "errors": [')

    async def test_the_generic_403_is_93_bytes_like_the_field_sample(self, api: Api) -> None:
        """The generic Forbidden problem is 93 bytes, production's content-length."""
        body = api.sandbox.state.problems.forbidden()
        assert body.body is not None
        assert len(json.dumps(body.body, indent=2)) == 93

    @pytest.mark.parametrize("host", ["api.twitter.com", "api.x.com"])
    async def test_problem_type_uris_use_the_configured_host(
        self, make_api: MakeApi, host: str
    ) -> None:
        """Problem types use api.twitter.com by default and api.x.com on request."""
        api = await make_api(problem_host=host)
        answer = await api.retweet(api.users[0], "x")
        assert answer.json["type"] == f"https://{host}/2/problems/invalid-request"

    async def test_answers_carry_the_apis_extra_headers(self, api: Api) -> None:
        """Responses carry api-version, x-transaction-id, x-response-time and cache-control."""
        answer = await api.retweet(api.users[0], TWEET)
        assert answer.headers["api-version"]
        assert len(answer.headers["x-transaction-id"]) == 16
        assert int(answer.headers["x-response-time"]) >= 0
        assert answer.headers["cache-control"] == "no-cache, no-store, max-age=0"

    async def test_success_bodies_are_compact_json(self, api: Api) -> None:
        """A success answer is application/json, not a problem."""
        answer = await api.retweet(api.users[0], TWEET)
        assert answer.headers["Content-Type"] == "application/json; charset=utf-8"


class TestInjectedFaults:
    @pytest.mark.parametrize("kind", ["500", "503"])
    async def test_json_5xx_is_counted_and_does_not_act(self, api: Api, kind: str) -> None:
        """A 500 or 503 comes as a JSON problem with rate-limit headers; the retweet did not happen
        but the request was counted."""
        user = api.users[0]
        await script(api, kind)
        answer = await api.retweet(user, TWEET)
        assert answer.status == int(kind)
        assert answer.json["status"] == int(kind)
        assert answer.headers["Content-Type"] == "application/problem+json"
        assert answer.headers["x-rate-limit-remaining"] == "49"
        assert await api.retweets_of(user) == []

    async def test_a_502_is_an_html_gateway_page_without_rate_limit_headers(self, api: Api) -> None:
        """A 502 from the edge has an HTML body, no rate-limit headers, and is not counted."""
        user = api.users[0]
        await script(api, "502-html")
        answer = await api.retweet(user, TWEET)
        assert answer.status == 502
        assert answer.headers["Content-Type"].startswith("text/html")
        assert "<html>" in answer.text
        assert "x-rate-limit-remaining" not in answer.headers
        assert (await api.retweet(user, TWEET)).headers["x-rate-limit-remaining"] == "49"

    async def test_a_504_has_an_empty_body(self, api: Api) -> None:
        """A 504 from the edge has no body at all."""
        await script(api, "504-empty")
        answer = await api.retweet(api.users[0], TWEET)
        assert (answer.status, answer.text) == (504, "")

    async def test_a_reset_before_processing_leaves_no_trace(self, api: Api) -> None:
        """A reset before the request is processed fails the client and changes nothing."""
        user = api.users[0]
        await script(api, "reset")
        with pytest.raises(aiohttp.ClientError):
            await api.retweet(user, TWEET)
        assert await api.retweets_of(user) == []
        assert (await api.stats())["by_fault"] == {"reset": 1}

    async def test_a_reset_after_processing_leaves_the_retweet_done(self, api: Api) -> None:
        """A reset after the request took effect fails the client although the retweet happened:
        the retry then meets "already retweeted"."""
        user = api.users[0]
        await script(api, "reset-after")
        with pytest.raises(aiohttp.ClientError):
            await api.retweet(user, TWEET)
        assert await api.retweets_of(user) == [TWEET]
        assert (await api.retweet(user, TWEET)).status == 400

    async def test_a_stall_outlasts_the_clients_timeout(self, make_api: MakeApi) -> None:
        """A stalled answer is held longer than the client waits, though the request took effect."""
        api = await make_api(stall_seconds=5)
        user = api.users[0]
        await script(api, "stall", endpoint="undo")
        path = f"/2/users/{user.user_id}/retweets/{TWEET}"
        authorization = api.oauth1("DELETE", api.sandbox.url + path, user)
        await api.retweet(user, TWEET)
        with pytest.raises(asyncio.TimeoutError):
            async with api.session.delete(
                api.sandbox.url + path,
                headers={"Authorization": authorization},
                timeout=aiohttp.ClientTimeout(total=0.3),
            ):
                pass
        assert await api.retweets_of(user) == []  # it acted before its answer was held back

    async def test_a_held_request_whose_client_left_never_takes_effect(
        self, make_api: MakeApi
    ) -> None:
        """A held request is processed only if its client is still waiting: one that timed out
        is dropped, and the retweet never happens."""
        api = await make_api(stall_seconds=0.5)
        user = api.users[0]
        await script(api, "hold")
        path = f"/2/users/{user.user_id}/retweets"
        authorization = api.oauth1("POST", api.sandbox.url + path, user)
        with pytest.raises(asyncio.TimeoutError):
            async with api.session.post(
                api.sandbox.url + path,
                json={"tweet_id": TWEET},
                headers={"Authorization": authorization},
                timeout=aiohttp.ClientTimeout(total=0.1),
            ):
                pass
        await asyncio.sleep(0.8)
        assert await api.retweets_of(user) == []
        assert (await api.stats())["by_status"] == {"dropped": 1}

    async def test_latency_is_added_to_every_answer(self, make_api: MakeApi) -> None:
        """With latency configured, an answer is not back before that time has passed."""
        api = await make_api(latency_ms=200)
        loop = asyncio.get_running_loop()
        started = loop.time()
        answer = await api.retweet(api.users[0], TWEET)
        assert answer.status == 200
        assert loop.time() - started >= 0.2

    async def test_a_partial_answer_carries_data_and_errors(self, api: Api) -> None:
        """A partial 200 has both data and an errors array."""
        await script(api, "partial")
        answer = await api.retweet(api.users[0], TWEET)
        assert answer.status == 200
        assert answer.json["data"] == {"retweeted": True}
        assert answer.json["errors"][0]["title"] == "Not Found Error"

    async def test_a_403_can_come_as_plain_json(self, api: Api) -> None:
        """The json-403 fault sends the generic Forbidden body as application/json."""
        await script(api, "403-json")
        answer = await api.retweet(api.users[0], TWEET)
        assert answer.status == 403
        assert answer.headers["Content-Type"].startswith("application/json")
        assert answer.json["title"] == "Forbidden"

    async def test_scripted_faults_match_user_and_endpoint(self, api: Api) -> None:
        """A fault scripted for one user's undo spares its retweets and others' undos."""
        first, second = api.users[0], api.users[1]
        await script(api, "503", count=2, user_id=first.user_id, endpoint="undo")
        assert (await api.retweet(first, TWEET)).status == 200
        assert (await api.undo(second, TWEET, auth="oauth2")).status == 200
        assert [(await api.undo(first, TWEET)).status for _ in range(3)] == [503, 503, 200]

    async def test_an_unknown_fault_kind_is_refused(self, api: Api) -> None:
        """Scripting a fault kind the sandbox does not know is a 400 naming it."""
        answer = await api.call(
            "POST", "/__sandbox/faults", auth="none", json_body={"kind": "meltdown"}
        )
        assert answer.status == 400
        assert "meltdown" in answer.text


class TestSeededFaults:
    async def test_random_faults_hit_at_about_their_rate(self, make_api: MakeApi) -> None:
        """With 30% 503s over 200 distinct retweets, between 15% and 45% fail."""
        api = await make_api(fault_rates={FaultKind.E503: 0.3}, unlimited=True)
        user = api.users[1]
        statuses = [(await api.retweet(user, str(n), auth="oauth2")).status for n in range(200)]
        assert set(statuses) == {200, 503}
        assert 30 <= statuses.count(503) <= 90

    def test_decisions_depend_on_the_request_not_the_arrival_order(self) -> None:
        """Two plans with one seed agree on every request's nth attempt, in whatever order asked."""
        requests = [f"POST /2/users/1/retweets {n}".encode() for n in range(300)] * 3
        first = FaultPlan({FaultKind.E503: 0.2, FaultKind.RESET: 0.1}, seed=42)
        second = FaultPlan({FaultKind.E503: 0.2, FaultKind.RESET: 0.1}, seed=42)
        forward = [first.decide(r, None, Endpoint.RETWEET) for r in requests]
        backward = [second.decide(r, None, Endpoint.RETWEET) for r in reversed(requests)]
        assert sorted(map(str, forward)) == sorted(map(str, backward))
        by_request: dict[bytes, list[FaultKind | None]] = {}
        for request, fault in zip(requests, forward, strict=True):
            by_request.setdefault(request, []).append(fault)
        third = FaultPlan({FaultKind.E503: 0.2, FaultKind.RESET: 0.1}, seed=42)
        for request, faults in by_request.items():
            assert [third.decide(request, None, Endpoint.RETWEET) for _ in faults] == faults

    def test_another_seed_gives_other_faults(self) -> None:
        """Changing the seed changes which requests fail."""
        requests = [str(n).encode() for n in range(300)]
        one = [
            FaultPlan({FaultKind.E503: 0.3}, seed=1).decide(r, None, Endpoint.RETWEET)
            for r in requests
        ]
        two = [
            FaultPlan({FaultKind.E503: 0.3}, seed=2).decide(r, None, Endpoint.RETWEET)
            for r in requests
        ]
        assert one != two

    def test_a_retried_request_is_not_doomed_to_fail_forever(self) -> None:
        """The nth attempt of one request gets a fresh draw, so retries eventually pass."""
        plan = FaultPlan({FaultKind.E503: 0.5}, seed=3)
        attempts = [plan.decide(b"same request", None, Endpoint.RETWEET) for _ in range(50)]
        assert None in attempts
        assert FaultKind.E503 in attempts
