"""The OAuth 2.0 token endpoints over HTTP (docs/api.md checklist items 32-37): refresh with
rotation, public and confidential clients, form or query parameters, expiry on the sandbox clock,
revocation, and single-use authorization codes with PKCE."""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from bulkrt.sandbox.world import SandboxUser
from tests.sandbox.conftest import Answer, Api, MakeApi

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
INVALID_TOKEN = {
    "error": "invalid_request",
    "error_description": "Value passed for the token was invalid.",
}


async def refresh(
    api: Api, token: str, *, in_query: bool = False, basic: str | None = None
) -> Answer:
    params = {"grant_type": "refresh_token", "refresh_token": token}
    if basic is None:
        params["client_id"] = api.app.client_id
    headers = dict(FORM)
    if basic is not None:
        headers["Authorization"] = f"Basic {basic}"
    if in_query:
        return await api.call(
            "POST", f"/2/oauth2/token?{urlencode(params)}", auth="none", headers=headers
        )
    return await api.call(
        "POST", "/2/oauth2/token", auth="none", body=urlencode(params).encode(), headers=headers
    )


async def retweet_with(api: Api, user: SandboxUser, access_token: str, tweet_id: str) -> Answer:
    return await api.call(
        "POST",
        f"/2/users/{user.user_id}/retweets",
        auth=f"Bearer {access_token}",
        json_body={"tweet_id": tweet_id},
    )


class TestRefresh:
    @pytest.mark.parametrize("in_query", [False, True])
    async def test_refresh_returns_the_documented_shape(self, api: Api, in_query: bool) -> None:
        """A refresh (form or query) returns bearer, 7200 s, new tokens and the scopes."""
        user = api.users[1]
        answer = await refresh(api, user.oauth2_refresh_token, in_query=in_query)
        assert answer.status == 200, answer.text
        body = answer.json
        assert body["token_type"] == "bearer"
        assert body["expires_in"] == 7200
        assert set(body["scope"].split(" ")) == {
            "tweet.read",
            "tweet.write",
            "users.read",
            "offline.access",
        }
        assert body["refresh_token"] != user.oauth2_refresh_token
        assert (await retweet_with(api, user, body["access_token"], "1")).status == 200

    async def test_refresh_tokens_rotate_and_a_used_one_is_refused(self, api: Api) -> None:
        """A refresh token works once: reuse is a 400 invalid_request; its successor works."""
        user = api.users[1]
        first = await refresh(api, user.oauth2_refresh_token)
        assert first.status == 200
        reused = await refresh(api, user.oauth2_refresh_token)
        assert (reused.status, reused.json) == (400, INVALID_TOKEN)
        second = await refresh(api, first.json["refresh_token"])
        assert second.status == 200
        assert (await api.stats())["refreshes"] == 2

    async def test_a_public_client_must_send_its_client_id(self, api: Api) -> None:
        """Without client_id a public client's refresh is refused and the token is not consumed."""
        user = api.users[1]
        params = {"grant_type": "refresh_token", "refresh_token": user.oauth2_refresh_token}
        answer = await api.call(
            "POST", "/2/oauth2/token", auth="none", body=urlencode(params).encode(), headers=FORM
        )
        assert answer.status == 400
        assert (await refresh(api, user.oauth2_refresh_token)).status == 200

    async def test_a_confidential_client_needs_basic_auth(self, make_api: MakeApi) -> None:
        """A confidential client needs Basic auth: without it 401 unauthorized_client."""
        api = await make_api(confidential_client=True)
        user = api.users[1]
        missing = await refresh(api, user.oauth2_refresh_token)
        assert missing.status == 401
        assert missing.json == {
            "error": "unauthorized_client",
            "error_description": "Missing valid authorization header",
        }
        assert api.app.client_secret is not None
        basic = base64.b64encode(f"{api.app.client_id}:{api.app.client_secret}".encode()).decode()
        assert (await refresh(api, user.oauth2_refresh_token, basic=basic)).status == 200
        wrong = base64.b64encode(f"{api.app.client_id}:nope".encode()).decode()
        assert (await refresh(api, "anything", basic=wrong)).status == 401

    async def test_an_expired_token_is_replaced_by_refreshing(self, api: Api) -> None:
        """After expiry the old access token is a 401 and the refreshed one works."""
        user = api.users[1]
        api.advance(7201)
        assert (await retweet_with(api, user, user.oauth2_access_token, "1")).status == 401
        fresh = await refresh(api, user.oauth2_refresh_token)
        assert (await retweet_with(api, user, fresh.json["access_token"], "1")).status == 200

    async def test_token_lifetime_is_configurable(self, make_api: MakeApi) -> None:
        """With a 60 s lifetime, tokens say so and stop working after 60 s of sandbox time."""
        api = await make_api(token_ttl=60)
        user = api.users[1]
        fresh = await refresh(api, user.oauth2_refresh_token)
        assert fresh.json["expires_in"] == 60
        api.advance(61)
        assert (await retweet_with(api, user, fresh.json["access_token"], "1")).status == 401


class TestRevoke:
    async def test_a_revoked_token_stops_working_at_once(self, api: Api) -> None:
        """POST /2/oauth2/revoke answers {"revoked": true} and the token is then a 401."""
        user = api.users[1]
        body = urlencode({"token": user.oauth2_access_token, "client_id": api.app.client_id})
        answer = await api.call(
            "POST", "/2/oauth2/revoke", auth="none", body=body.encode(), headers=FORM
        )
        assert (answer.status, answer.json) == (200, {"revoked": True})
        assert (await api.retweet(user, "1", auth="oauth2")).status == 401


class TestAuthorizationCode:
    async def authorize(self, api: Api, verifier: str, scope: str) -> str:
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(
            b"="
        )
        query = urlencode(
            {
                "response_type": "code",
                "client_id": api.app.client_id,
                "redirect_uri": "http://127.0.0.1/callback",
                "scope": scope,
                "state": "xyz",
                "code_challenge": challenge.decode(),
                "code_challenge_method": "S256",
                "user": api.users[2].name,
            }
        )
        async with api.session.get(
            f"{api.sandbox.url}/i/oauth2/authorize?{query}", allow_redirects=False
        ) as response:
            assert response.status == 302
            location = urlsplit(response.headers["Location"])
        params = parse_qs(location.query)
        assert params["state"] == ["xyz"]
        return params["code"][0]

    async def exchange(self, api: Api, code: str, verifier: str) -> Answer:
        body = urlencode(
            {
                "code": code,
                "grant_type": "authorization_code",
                "client_id": api.app.client_id,
                "redirect_uri": "http://127.0.0.1/callback",
                "code_verifier": verifier,
            }
        )
        return await api.call(
            "POST", "/2/oauth2/token", auth="none", body=body.encode(), headers=FORM
        )

    async def test_a_code_exchanged_with_its_verifier_gives_tokens_for_the_user(
        self, api: Api
    ) -> None:
        """Authorize, then exchange the code with the PKCE verifier: the token acts as that user."""
        verifier = "v" * 50
        code = await self.authorize(
            api, verifier, "tweet.read tweet.write users.read offline.access"
        )
        answer = await self.exchange(api, code, verifier)
        assert answer.status == 200, answer.text
        assert "refresh_token" in answer.json
        user = api.users[2]
        assert (await retweet_with(api, user, answer.json["access_token"], "5")).status == 200
        assert await api.retweets_of(user) == ["5"]

    async def test_a_code_works_once(self, api: Api) -> None:
        """The second exchange of the same code is refused."""
        verifier = "w" * 50
        code = await self.authorize(api, verifier, "tweet.read users.read")
        assert (await self.exchange(api, code, verifier)).status == 200
        again = await self.exchange(api, code, verifier)
        assert again.status == 400
        assert again.json["error"] == "invalid_request"

    async def test_a_code_expires_after_30_seconds(self, api: Api) -> None:
        """A code exchanged 31 s after it was issued (sandbox time) is refused."""
        verifier = "x" * 50
        code = await self.authorize(api, verifier, "tweet.read users.read")
        api.advance(31)
        assert (await self.exchange(api, code, verifier)).status == 400

    async def test_a_wrong_verifier_is_refused(self, api: Api) -> None:
        """PKCE: a verifier that does not hash to the challenge is refused."""
        code = await self.authorize(api, "y" * 50, "tweet.read users.read")
        assert (await self.exchange(api, code, "z" * 50)).status == 400

    async def test_no_refresh_token_without_offline_access(self, api: Api) -> None:
        """Without the offline.access scope the token answer has no refresh_token."""
        verifier = "q" * 50
        code = await self.authorize(api, verifier, "tweet.read tweet.write users.read")
        answer = await self.exchange(api, code, verifier)
        assert answer.status == 200
        assert "refresh_token" not in answer.json


class TestInspection:
    async def test_stats_count_requests_by_status_and_user(self, api: Api) -> None:
        """GET /__sandbox/stats counts API requests by status and by user."""
        first, second = api.users[0], api.users[1]
        await api.retweet(first, "1")
        await api.retweet(first, "1")
        await api.retweet(second, "1", auth="oauth2")
        stats = await api.stats()
        assert stats["requests"] == 3
        assert stats["by_status"] == {"200": 2, "400": 1}
        assert stats["by_user"] == {first.user_id: 2, second.user_id: 1}

    async def test_the_request_log_lists_requests_in_order(self, api: Api) -> None:
        """GET /__sandbox/log lists each request's time, user and status, pageable by index."""
        user = api.users[0]
        await api.retweet(user, "1")
        await api.undo(user, "1")
        log = (await api.call("GET", "/__sandbox/log", auth="none")).json
        assert [(e["method"], e["status"]) for e in log["entries"]] == [
            ("POST", "200"),
            ("DELETE", "200"),
        ]
        assert log["next"] == 2
        later = (await api.call("GET", "/__sandbox/log?since=1", auth="none")).json
        assert [e["method"] for e in later["entries"]] == ["DELETE"]

    async def test_log_numbers_stay_stable_when_old_entries_are_dropped(
        self, make_api: MakeApi
    ) -> None:
        """With a log of 3 entries, after 5 requests `since` still counts from the first request
        ever, and ``first`` names the oldest entry kept."""
        api = await make_api(log_size=3)
        user = api.users[0]
        for n in range(5):
            await api.retweet(user, str(n + 1))
        log = (await api.call("GET", "/__sandbox/log", auth="none")).json
        assert (log["first"], log["next"], len(log["entries"])) == (2, 5, 3)
        later = (await api.call("GET", "/__sandbox/log?since=4", auth="none")).json
        assert [e["path"] for e in later["entries"]] == [f"/2/users/{user.user_id}/retweets"]
        assert later["next"] == 5

    async def test_unknown_users_are_404_on_the_inspection_api(self, api: Api) -> None:
        """Asking for the retweets of a user the sandbox does not have is a 404."""
        answer = await api.call("GET", "/__sandbox/users/123/retweets", auth="none")
        assert answer.status == 404

    async def test_the_clock_can_be_read_and_moved(self, api: Api) -> None:
        """GET and POST /__sandbox/clock read the sandbox time and jump it ahead, never back."""
        before = (await api.call("GET", "/__sandbox/clock", auth="none")).json["now"]
        moved = await api.call("POST", "/__sandbox/clock", auth="none", json_body={"advance": 900})
        assert moved.json["now"] >= before + 900
        back = await api.call("POST", "/__sandbox/clock", auth="none", json_body={"advance": -1})
        assert back.status == 400
