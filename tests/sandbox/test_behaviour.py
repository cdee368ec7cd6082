"""The sandbox's retweet and undo endpoints over real HTTP: routes, request validation, and the
state each request leaves behind (docs/api.md checklist items 1-6 and 16-23)."""

from __future__ import annotations

import pytest

from tests.sandbox.conftest import Api, MakeApi

TWEET = "1228393702244134912"
INVALID_REQUEST = "https://api.twitter.com/2/problems/invalid-request"


class TestRoutes:
    async def test_retweet_then_undo_answer_the_documented_bodies(self, api: Api) -> None:
        """POST answers 200 retweeted:true, DELETE 200 retweeted:false, and the state follows."""
        user = api.users[0]
        answer = await api.retweet(user, TWEET)
        assert (answer.status, answer.json) == (200, {"data": {"retweeted": True}})
        assert await api.retweets_of(user) == [TWEET]
        answer = await api.undo(user, TWEET)
        assert (answer.status, answer.json) == (200, {"data": {"retweeted": False}})
        assert await api.retweets_of(user) == []

    @pytest.mark.parametrize("host", ["api.x.com", "api.twitter.com", "localhost"])
    async def test_routes_answer_under_any_host_and_verify_the_signed_host(
        self, api: Api, host: str
    ) -> None:
        """A request signed for the Host it was sent with is accepted whatever that host is."""
        user = api.users[0]
        path = f"/2/users/{user.user_id}/retweets/{TWEET}"
        authorization = api.oauth1("DELETE", f"http://{host}{path}", user)
        answer = await api.call("DELETE", path, auth=authorization, headers={"Host": host})
        assert answer.status == 200, answer.text

    async def test_a_signature_for_another_host_is_refused(self, api: Api) -> None:
        """The base string uses the Host as received: api.x.com's signature fails elsewhere."""
        user = api.users[0]
        path = f"/2/users/{user.user_id}/retweets/{TWEET}"
        authorization = api.oauth1("DELETE", f"http://api.x.com{path}", user)
        answer = await api.call(
            "DELETE", path, auth=authorization, headers={"Host": "api.twitter.com"}
        )
        assert answer.status == 401
        assert answer.headers["x-sandbox-auth-failure"] == "signature mismatch"

    @pytest.mark.parametrize("auth", ["oauth1", "oauth2"])
    async def test_users_me_names_the_authenticated_user(self, api: Api, auth: str) -> None:
        """GET /2/users/me answers the caller's id and username, as tweepy needs for OAuth 2.0."""
        user = api.users[1]
        answer = await api.call("GET", "/2/users/me", user=user, auth=auth)
        assert answer.status == 200
        assert answer.json["data"]["id"] == user.user_id
        assert answer.json["data"]["username"] == user.username

    async def test_an_unknown_route_is_a_404_problem(self, api: Api) -> None:
        """A path the API does not have answers a 404 problem body, not an HTML page."""
        answer = await api.call("GET", "/2/nothing-here", auth="none")
        assert answer.status == 404
        assert answer.headers["Content-Type"].startswith("application/problem+json")
        assert answer.json["status"] == 404


class TestValidation:
    @pytest.mark.parametrize(
        ("path_id", "why"), [("12ab", "letters"), ("1" * 20, "20 digits"), ("-5", "negative")]
    )
    async def test_a_malformed_path_id_is_an_invalid_request(
        self, api: Api, path_id: str, why: str
    ) -> None:
        """A path {id} that is not 1-19 digits is a 400 naming the `id` parameter."""
        user = api.users[0]
        path = f"/2/users/{path_id}/retweets"
        answer = await api.call("POST", path, user=user, json_body={"tweet_id": TWEET})
        assert answer.status == 400, why
        assert answer.json["type"] == INVALID_REQUEST
        assert answer.json["errors"][0]["parameters"] == {"id": [path_id]}

    @pytest.mark.parametrize("tweet_id", ["12a", "1" * 20, "", " 1", "1.5"])
    async def test_a_malformed_tweet_id_is_an_invalid_request(
        self, api: Api, tweet_id: str
    ) -> None:
        """A body tweet_id that is not 1-19 digits is a 400 and changes nothing."""
        user = api.users[0]
        answer = await api.retweet(user, tweet_id)
        assert answer.status == 400
        assert answer.json["type"] == INVALID_REQUEST
        assert await api.retweets_of(user) == []

    async def test_a_malformed_source_tweet_id_is_an_invalid_request(self, api: Api) -> None:
        """DELETE with a non-numeric source_tweet_id is a 400 naming that parameter."""
        answer = await api.undo(api.users[0], "abc")
        assert answer.status == 400
        assert answer.json["errors"][0]["parameters"] == {"source_tweet_id": ["abc"]}

    @pytest.mark.parametrize(
        ("body", "content_type", "strict_status", "lenient_status"),
        [
            (b'{"tweet_id": "20"}', "application/json", 200, 200),
            (b'{"tweet_id": "20"}', "application/json; charset=utf-8", 200, 200),
            (b'{"tweet_id": 20}', "application/json", 400, 200),
            (b'{"tweet_id": "20", "extra": 1}', "application/json", 400, 200),
            (b'{"tweet_id": "20"}', None, 400, 200),
            (b"tweet_id=20", "application/x-www-form-urlencoded", 400, 400),
            (b"{not json", "application/json", 400, 400),
            (b'["20"]', "application/json", 400, 400),
            (b"{}", "application/json", 400, 400),
            (b"", "application/json", 400, 400),
            (b'{"tweet_id": true}', "application/json", 400, 400),
        ],
    )
    @pytest.mark.parametrize("strict", [True, False])
    async def test_retweet_body_rules_in_strict_and_lenient_mode(
        self,
        make_api: MakeApi,
        body: bytes,
        content_type: str | None,
        strict_status: int,
        lenient_status: int,
        strict: bool,
    ) -> None:
        """Strict mode follows the OpenAPI schema; lenient takes numbers, extra keys, no type."""
        api = await make_api(body_check="strict" if strict else "lenient")
        user = api.users[0]
        headers = {"Content-Type": content_type} if content_type else {}
        path = f"/2/users/{user.user_id}/retweets"
        answer = await api.call("POST", path, user=user, body=body, headers=headers)
        assert answer.status == (strict_status if strict else lenient_status), answer.text
        if answer.status == 400:
            assert answer.json["type"] == INVALID_REQUEST
            assert await api.retweets_of(user) == []

    async def test_a_path_id_of_another_user_is_refused_with_the_api_message(
        self, api: Api
    ) -> None:
        """Acting on another user's path is a 400 saying it must be the authenticating user."""
        me, other = api.users[0], api.users[1]
        path = f"/2/users/{other.user_id}/retweets"
        answer = await api.call("POST", path, user=me, json_body={"tweet_id": TWEET})
        assert answer.status == 400
        assert answer.json["errors"][0]["message"] == (
            f"The `id` query parameter value [{other.user_id}] must be the same as the "
            f"authenticating user [{me.user_id}]"
        )
        assert await api.retweets_of(other) == []

    async def test_the_id_mismatch_status_is_switchable_to_403(self, make_api: MakeApi) -> None:
        """With id_mismatch_status=403 the same refusal is a 403 carrying the same message."""
        api = await make_api(id_mismatch_status=403)
        me, other = api.users[0], api.users[1]
        answer = await api.call(
            "POST", f"/2/users/{other.user_id}/retweets", user=me, json_body={"tweet_id": TWEET}
        )
        assert answer.status == 403
        assert "must be the same as the authenticating user" in answer.json["detail"]


class TestState:
    async def test_undo_of_nothing_succeeds_with_no_action(self, api: Api) -> None:
        """DELETE of a retweet that does not exist is 200 retweeted:false."""
        answer = await api.undo(api.users[0], TWEET)
        assert (answer.status, answer.json) == (200, {"data": {"retweeted": False}})

    async def test_retweeting_twice_is_the_already_retweeted_400(self, api: Api) -> None:
        """A second POST answers 400 with the production message; the retweet stays."""
        user = api.users[0]
        assert (await api.retweet(user, TWEET)).status == 200
        answer = await api.retweet(user, TWEET)
        assert answer.status == 400
        assert answer.json["errors"] == [
            {"message": "You cannot retweet a Tweet that you have already retweeted."}
        ]
        assert answer.json["type"] == INVALID_REQUEST
        assert await api.retweets_of(user) == [TWEET]

    async def test_already_retweeted_is_switchable_to_idempotent_success(
        self, make_api: MakeApi
    ) -> None:
        """In idempotent mode a second POST answers 200 retweeted:true, like X's playground."""
        api = await make_api(already_retweeted="idempotent")
        user = api.users[0]
        await api.retweet(user, TWEET)
        answer = await api.retweet(user, TWEET)
        assert (answer.status, answer.json) == (200, {"data": {"retweeted": True}})

    async def test_retweet_undo_retweet_cycles_and_only_delete_clears(self, api: Api) -> None:
        """Retweet, undo, retweet all succeed; only the DELETE makes a POST possible again."""
        user = api.users[2]
        assert (await api.retweet(user, TWEET)).status == 200
        assert (await api.retweet(user, TWEET)).status == 400
        assert (await api.undo(user, TWEET)).status == 200
        assert (await api.retweet(user, TWEET)).status == 200
        assert await api.retweets_of(user) == [TWEET]

    async def test_users_have_separate_retweets(self, api: Api) -> None:
        """One user's retweet is not another's: both may retweet the same Tweet."""
        first, second = api.users[0], api.users[1]
        assert (await api.retweet(first, TWEET, auth="oauth1")).status == 200
        assert (await api.retweet(second, TWEET, auth="oauth2")).status == 200
        assert await api.retweets_of(first) == [TWEET]
        assert await api.retweets_of(second) == [TWEET]

    @pytest.mark.parametrize(
        ("success_id", "data"),
        [
            ("none", {"retweeted": True}),
            ("id", {"id": TWEET, "retweeted": True}),
            ("rest_id", {"rest_id": TWEET, "retweeted": True}),
        ],
    )
    async def test_the_success_body_can_carry_the_source_tweet_id(
        self, make_api: MakeApi, success_id: str, data: dict[str, object]
    ) -> None:
        """The success body is {retweeted} by default, with `id` or `rest_id` on request."""
        api = await make_api(success_id=success_id)
        answer = await api.retweet(api.users[0], TWEET)
        assert answer.json == {"data": data}

    async def test_a_deleted_tweet_answers_200_with_only_errors(self, make_api: MakeApi) -> None:
        """Retweeting a deleted Tweet is a 200 with a resource-not-found error and no data."""
        api = await make_api(deleted_tweets=frozenset({TWEET}))
        user = api.users[0]
        answer = await api.retweet(user, TWEET)
        assert answer.status == 200
        assert "data" not in answer.json
        (error,) = answer.json["errors"]
        assert error["type"] == "https://api.twitter.com/2/problems/resource-not-found"
        assert error["detail"] == f"Could not find tweet with id: [{TWEET}]."
        assert error["title"] == "Not Found Error"
        assert error["resource_type"] == "tweet"
        assert await api.retweets_of(user) == []

    async def test_a_deleted_tweet_is_switchable_to_a_404(self, make_api: MakeApi) -> None:
        """In 404 mode a deleted Tweet is a 404 resource-not-found problem."""
        api = await make_api(deleted_tweets=frozenset({TWEET}), not_found="404")
        answer = await api.retweet(api.users[0], TWEET)
        assert answer.status == 404
        assert answer.json["type"] == "https://api.twitter.com/2/problems/resource-not-found"

    @pytest.mark.parametrize(("mode", "has_data"), [("noop", True), ("errors-200", False)])
    async def test_undo_of_a_deleted_tweet(
        self, make_api: MakeApi, mode: str, has_data: bool
    ) -> None:
        """Undoing a deleted Tweet's retweet succeeds with no action, or answers errors-only."""
        api = await make_api(deleted_tweets=frozenset({TWEET}), undo_not_found=mode)
        answer = await api.undo(api.users[0], TWEET)
        assert answer.status == 200
        assert ("data" in answer.json) is has_data
        assert ("errors" in answer.json) is not has_data

    async def test_deleting_a_tweet_removes_its_retweets(self, api: Api) -> None:
        """When a retweeted Tweet is deleted (inspection API), its retweet disappears."""
        user = api.users[0]
        await api.retweet(user, TWEET)
        answer = await api.call(
            "PUT", f"/__sandbox/tweets/{TWEET}", auth="none", json_body={"state": "deleted"}
        )
        assert answer.status == 200
        assert await api.retweets_of(user) == []

    async def test_a_protected_tweet_is_forbidden(self, api: Api) -> None:
        """A protected Tweet answers the generic 403 problem with a reason; nothing changes."""
        user = api.users[0]
        await api.call(
            "PUT", f"/__sandbox/tweets/{TWEET}", auth="none", json_body={"state": "protected"}
        )
        answer = await api.retweet(user, TWEET)
        assert answer.status == 403
        assert answer.json["type"] == "about:blank"
        assert answer.json["title"] == "Forbidden"
        assert answer.json["detail"] == "Retweet is not permissible for this status."
        assert await api.retweets_of(user) == []

    async def test_a_user_blocked_by_the_author_is_forbidden(self, api: Api) -> None:
        """A block between the author and the user answers 403 with the block message."""
        user = api.users[1]
        await api.call(
            "POST",
            "/__sandbox/blocks",
            auth="none",
            json_body={"user_id": user.user_id, "tweet_id": TWEET},
        )
        answer = await api.retweet(user, TWEET, auth="oauth2")
        assert answer.status == 403
        assert "blocked" in answer.json["detail"]
        assert (await api.retweet(api.users[0], TWEET)).status == 200

    async def test_retweeting_your_own_tweet_is_allowed(self, api: Api) -> None:
        """A Tweet the user just posted can be retweeted by that user."""
        user = api.users[0]
        posted = await api.call("POST", "/2/tweets", user=user, json_body={"text": "hello"})
        assert posted.status == 201
        own = posted.json["data"]["id"]
        answer = await api.retweet(user, own)
        assert (answer.status, answer.json) == (200, {"data": {"retweeted": True}})
        assert await api.retweets_of(user) == [own]

    async def test_pre_existing_retweets_can_be_seeded(self, api: Api) -> None:
        """PUT /__sandbox/users/{id}/retweets gives an account retweets made before a campaign."""
        user = api.users[0]
        answer = await api.call(
            "PUT",
            f"/__sandbox/users/{user.user_id}/retweets",
            auth="none",
            json_body={"tweet_ids": ["30", "4"]},
        )
        assert answer.status == 200
        assert await api.retweets_of(user) == ["4", "30"]
        assert (await api.retweet(user, "30")).status == 400
