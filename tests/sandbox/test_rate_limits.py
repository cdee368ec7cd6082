"""The sandbox's rate limits over HTTP: fixed per-user, per-endpoint windows that open at the first
request, the presets, headers on every response, 24-hour caps, hidden caps and the 429 forms
(docs/api.md checklist items 24-28)."""

from __future__ import annotations

import pytest

from bulkrt.sandbox.config import Endpoint, FixedWindow, HiddenLimit, SandboxConfig, Tier
from tests.sandbox.conftest import MakeApi

RATE_HEADERS = ("x-rate-limit-limit", "x-rate-limit-remaining", "x-rate-limit-reset")
TOO_MANY = {
    "title": "Too Many Requests",
    "type": "about:blank",
    "status": 429,
    "detail": "Too Many Requests",
}


def remaining(answer: object) -> int:
    return int(answer.headers["x-rate-limit-remaining"])  # type: ignore[attr-defined]


class TestPresets:
    @pytest.mark.parametrize(
        ("tier", "per_15_min"),
        [(Tier.FREE, 1), (Tier.BASIC, 5), (Tier.PRO, 50), (Tier.PAYG, 50), (Tier.LAUNCH, 50)],
    )
    def test_each_preset_has_its_documented_retweet_windows(
        self, tier: Tier, per_15_min: int
    ) -> None:
        """Retweet and undo each get the preset's requests per 15 minutes, per user."""
        windows = SandboxConfig(tier=tier).windows()
        assert windows[Endpoint.RETWEET] == FixedWindow(per_15_min, 900)
        assert windows[Endpoint.UNDO] == FixedWindow(per_15_min, 900)

    def test_only_launch_has_the_hidden_three_hour_cap_shared_with_posting(self) -> None:
        """Launch adds 300 per 3 hours over retweets and posts; the other presets add nothing."""
        (cap,) = SandboxConfig(tier=Tier.LAUNCH).all_hidden_caps()
        assert (cap.limit, cap.seconds) == (300, 10800)
        assert cap.endpoints == {Endpoint.RETWEET, Endpoint.POST_TWEET}
        for tier in (Tier.FREE, Tier.BASIC, Tier.PRO, Tier.PAYG):
            assert SandboxConfig(tier=tier).all_hidden_caps() == ()

    async def test_the_free_preset_allows_one_retweet_per_window(self, make_api: MakeApi) -> None:
        """Under free, the second retweet in 15 minutes is a 429."""
        api = await make_api(tier="free")
        user = api.users[0]
        assert (await api.retweet(user, "1")).status == 200
        assert (await api.retweet(user, "2")).status == 429


class TestWindows:
    async def test_a_window_admits_its_limit_then_429s_until_it_resets(
        self, make_api: MakeApi
    ) -> None:
        """With 3 per 60 s: three requests pass counting down, the fourth is a 429, and after the
        window a new one opens."""
        api = await make_api(limit=3, window=60)
        user = api.users[0]
        answers = [await api.retweet(user, str(n)) for n in range(1, 5)]
        assert [a.status for a in answers] == [200, 200, 200, 429]
        assert [remaining(a) for a in answers] == [2, 1, 0, 0]
        assert answers[3].json == TOO_MANY
        assert await api.retweets_of(user) == ["1", "2", "3"]
        api.advance(60)
        again = await api.retweet(user, "4")
        assert (again.status, remaining(again)) == (200, 2)

    async def test_the_reset_is_the_first_request_plus_the_window(self, make_api: MakeApi) -> None:
        """x-rate-limit-reset is absolute epoch seconds: the window's first request plus its length,
        and it does not move with later requests."""
        api = await make_api(limit=5, window=900)
        user = api.users[0]
        first_at = api.now()
        first = await api.retweet(user, "1")
        api.advance(100)
        later = await api.retweet(user, "2")
        reset = int(first.headers["x-rate-limit-reset"])
        assert first_at + 900 <= reset <= first_at + 902
        assert int(later.headers["x-rate-limit-reset"]) == reset

    async def test_endpoints_and_users_have_separate_windows(self, make_api: MakeApi) -> None:
        """Exhausting one user's retweet window leaves its undo window and other users' untouched;
        there is no per-app bucket."""
        api = await make_api(limit=1, window=900)
        first, second = api.users[0], api.users[1]
        assert (await api.retweet(first, "1")).status == 200
        assert (await api.retweet(first, "2")).status == 429
        assert (await api.undo(first, "1")).status == 200
        assert (await api.retweet(second, "1", auth="oauth2")).status == 200

    async def test_a_429_does_not_use_up_the_next_window(self, make_api: MakeApi) -> None:
        """Refused requests are not counted: after the reset the full limit is available."""
        api = await make_api(limit=2, window=60)
        user = api.users[0]
        for n in range(5):
            await api.retweet(user, str(n))
        api.advance(60)
        assert [(await api.retweet(user, str(n))).status for n in (10, 11, 12)] == [200, 200, 429]

    async def test_without_limits_headers_show_ample_room(self, make_api: MakeApi) -> None:
        """With limits off (benchmarks) nothing is refused and the headers say so."""
        api = await make_api(unlimited=True, tier="free")
        user = api.users[0]
        answers = [await api.retweet(user, str(n)) for n in range(1, 4)]
        assert [a.status for a in answers] == [200, 200, 200]
        assert remaining(answers[-1]) > 1000


class TestHeadersEverywhere:
    async def test_every_kind_of_answer_carries_the_rate_limit_headers(
        self, make_api: MakeApi
    ) -> None:
        """200, 400, 401, 403 and 429 answers all carry x-rate-limit-limit/remaining/reset."""
        api = await make_api(limit=4, window=900, protected_tweets=frozenset({"99"}))
        user = api.users[0]
        answers = {
            "200": await api.retweet(user, "1"),
            "400": await api.retweet(user, "1"),
            "403": await api.retweet(user, "99"),
            "401": await api.call(
                "POST",
                f"/2/users/{user.user_id}/retweets",
                auth="Bearer nope",
                json_body={"tweet_id": "2"},
            ),
        }
        await api.retweet(user, "3")
        answers["429"] = await api.retweet(user, "4")
        for status, answer in answers.items():
            assert str(answer.status) == status
            for header in RATE_HEADERS:
                assert header in answer.headers, (status, header)
        assert remaining(answers["401"]) == 4  # a refused login is not counted against the user

    async def test_a_429_has_no_retry_after_header(self, make_api: MakeApi) -> None:
        """The API sends no Retry-After; clients must use x-rate-limit-reset."""
        api = await make_api(limit=1, window=900)
        user = api.users[0]
        await api.retweet(user, "1")
        answer = await api.retweet(user, "2")
        assert answer.status == 429
        assert "Retry-After" not in answer.headers
        assert answer.headers["Content-Type"].startswith("application/problem+json")


class TestDayCaps:
    async def test_24_hour_caps_show_in_headers_and_refuse_with_remaining_left(
        self, make_api: MakeApi
    ) -> None:
        """A user's 24-hour cap appears as x-user-limit-24hour-*; when it is spent, the 429 comes
        while the 15-minute window still shows room (the field's "24 hour ban")."""
        api = await make_api(user_day_limit=2, app_day_limit=100)
        user = api.users[0]
        first = await api.retweet(user, "1")
        assert first.headers["x-user-limit-24hour-limit"] == "2"
        assert first.headers["x-user-limit-24hour-remaining"] == "1"
        assert first.headers["x-app-limit-24hour-remaining"] == "99"
        await api.retweet(user, "2")
        refused = await api.retweet(user, "3")
        assert refused.status == 429
        assert remaining(refused) > 0
        assert refused.headers["x-user-limit-24hour-remaining"] == "0"
        api.advance(86_400)
        assert (await api.retweet(user, "3")).status == 200


class TestHiddenCaps:
    async def test_launch_caps_posting_and_retweets_at_300_per_3_hours_with_no_header(
        self, make_api: MakeApi
    ) -> None:
        """Under launch (15-minute limit raised to 400), the 301st POST in 3 hours is a 429 while
        x-rate-limit-remaining still shows 99; undo is not capped."""
        api = await make_api(tier="launch", limit=400, window=900)
        user = api.users[1]
        for n in range(1, 301):
            answer = await api.retweet(user, str(n), auth="oauth2")
            assert answer.status == 200, (n, answer.text)
        refused = await api.retweet(user, "301", auth="oauth2")
        assert refused.status == 429
        assert remaining(refused) == 100
        assert not any(h.startswith("x-") and "3h" in h for h in refused.headers)
        assert (await api.undo(user, "1", auth="oauth2")).status == 200
        api.advance(3 * 3600)  # the OAuth 2.0 token has expired by now; sign with OAuth 1.0a
        assert (await api.retweet(user, "301", auth="oauth1")).status == 200

    async def test_a_hidden_cap_is_shared_with_posting(self, make_api: MakeApi) -> None:
        """Posts made elsewhere use up the same hidden cap as retweets."""
        api = await make_api(
            hidden_caps=(HiddenLimit(3, 10800, frozenset({Endpoint.RETWEET, Endpoint.POST_TWEET})),)
        )
        user = api.users[0]
        for text in ("a", "b"):
            posted = await api.call("POST", "/2/tweets", user=user, json_body={"text": text})
            assert posted.status == 201
        assert (await api.retweet(user, "1")).status == 200
        refused = await api.retweet(user, "2")
        assert refused.status == 429
        assert remaining(refused) > 0


class TestTooManyForms:
    @pytest.mark.parametrize(
        ("body_mode", "expected"),
        [
            ("problem", TOO_MANY),
            ("v1", {"errors": [{"code": 88, "message": "Rate limit exceeded"}]}),
        ],
    )
    async def test_the_429_body_forms(
        self, make_api: MakeApi, body_mode: str, expected: dict[str, object]
    ) -> None:
        """The 429 body is the about:blank problem, or the v1.1-style code 88 body on request."""
        api = await make_api(limit=1, window=900, rate_limit_body=body_mode)
        user = api.users[0]
        await api.retweet(user, "1")
        answer = await api.retweet(user, "2")
        assert (answer.status, answer.json) == (429, expected)

    async def test_the_usage_capped_form(self, make_api: MakeApi) -> None:
        """In usage-capped mode the 429 is the usage-capped problem with period and scope."""
        api = await make_api(limit=1, window=900, rate_limit_body="usage-capped")
        user = api.users[0]
        await api.retweet(user, "1")
        answer = await api.retweet(user, "2")
        assert answer.status == 429
        assert answer.json["type"] == "https://api.twitter.com/2/problems/usage-capped"
        assert answer.json["period"] == "Daily"
        assert answer.json["scope"] == "Account"

    async def test_stale_headers_show_room_and_a_reset_in_the_past(self, make_api: MakeApi) -> None:
        """In stale mode a 429 claims remaining > 0 and a reset already past (a hidden limit)."""
        api = await make_api(limit=1, window=900, rate_limit_headers="stale")
        user = api.users[0]
        await api.retweet(user, "1")
        answer = await api.retweet(user, "2")
        assert answer.status == 429
        assert remaining(answer) > 0
        assert int(answer.headers["x-rate-limit-reset"]) < api.now()

    async def test_a_429_can_come_without_any_rate_limit_header(self, make_api: MakeApi) -> None:
        """In none mode a 429 carries no x-rate-limit-* header at all."""
        api = await make_api(limit=1, window=900, rate_limit_headers="none")
        user = api.users[0]
        await api.retweet(user, "1")
        answer = await api.retweet(user, "2")
        assert answer.status == 429
        assert not [h for h in answer.headers if h.lower().startswith("x-rate-limit")]
