"""Authentication as the sandbox checks it: OAuth 1.0a signatures, timestamps and nonces, OAuth 2.0
user tokens, app-only tokens, app permissions, scopes and enrolment
(docs/api.md checklist items 7-15)."""

from __future__ import annotations

import base64
import time
from email.utils import parsedate_to_datetime

import pytest

from bulkrt.sandbox import ManualClock, SandboxConfig, SandboxState
from bulkrt.sandbox.oauth1 import OAuth1Token, OAuth1Verifier
from tests.sandbox.conftest import Api, MakeApi

TWEET = "20"
UNAUTHORIZED = {
    "title": "Unauthorized",
    "type": "about:blank",
    "status": 401,
    "detail": "Unauthorized",
}


class TestOAuth1Verifier:
    """The verifier against the X documentation's worked example (docs/api.md §5.1 test vector)."""

    URL = "https://api.x.com/1.1/statuses/update.json?include_entities=true"
    BODY = b"status=Hello%20Ladies%20%2B%20Gentlemen%2C%20a%20signed%20OAuth%20request%21"
    HEADER = (
        'OAuth oauth_consumer_key="xvz1evFS4wEEPTGEFPHBog", '
        'oauth_nonce="kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg", '
        'oauth_signature="Ls93hJiZbQ3akF3HF3x1Bz8%2FzU4%3D", oauth_signature_method="HMAC-SHA1", '
        'oauth_timestamp="1318622958", '
        'oauth_token="370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb", oauth_version="1.0"'
    )

    def verifier(self) -> OAuth1Verifier:
        token = OAuth1Token(
            "370773112", "xvz1evFS4wEEPTGEFPHBog", "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE"
        )
        return OAuth1Verifier(
            {"xvz1evFS4wEEPTGEFPHBog": "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw"},
            {"370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb": token},
            skew=300,
        )

    def headers(self) -> dict[str, str]:
        return {"Authorization": self.HEADER, "Content-Type": "application/x-www-form-urlencoded"}

    def test_the_documented_example_verifies(self) -> None:
        """The docs' request with its published signature is accepted and names the user."""
        verdict = self.verifier().verify(
            "POST", self.URL, self.headers(), self.BODY, now=1318622958
        )
        assert (verdict.user_id, verdict.reason) == ("370773112", "ok")

    def test_a_form_body_is_part_of_the_signature(self) -> None:
        """Changing one byte of a form-encoded body breaks the signature."""
        body = self.BODY.replace(b"Ladies", b"Lords")
        verdict = self.verifier().verify("POST", self.URL, self.headers(), body, now=1318622958)
        assert verdict.reason == "signature mismatch"

    def test_the_host_is_part_of_the_signature(self) -> None:
        """The same request received on api.twitter.com does not verify."""
        url = self.URL.replace("api.x.com", "api.twitter.com")
        verdict = self.verifier().verify("POST", url, self.headers(), self.BODY, now=1318622958)
        assert verdict.reason == "signature mismatch"

    def test_the_query_is_part_of_the_signature(self) -> None:
        """Dropping the query parameter breaks the signature."""
        url = self.URL.split("?")[0]
        verdict = self.verifier().verify("POST", url, self.headers(), self.BODY, now=1318622958)
        assert verdict.reason == "signature mismatch"

    @pytest.mark.parametrize(
        ("offset", "ok"), [(-301, False), (-299, True), (299, True), (301, False)]
    )
    def test_the_timestamp_window_is_checked_on_the_injected_clock(
        self, offset: int, ok: bool
    ) -> None:
        """A timestamp more than 300 s from the sandbox clock is refused, either way."""
        verdict = self.verifier().verify(
            "POST", self.URL, self.headers(), self.BODY, now=1318622958 - offset
        )
        assert (verdict.reason == "ok") is ok, verdict.reason

    def test_a_replayed_nonce_is_refused(self) -> None:
        """The identical signed request a second time is refused as a replay."""
        verifier = self.verifier()
        assert (
            verifier.verify("POST", self.URL, self.headers(), self.BODY, now=1318622958).reason
            == "ok"
        )
        replay = verifier.verify("POST", self.URL, self.headers(), self.BODY, now=1318622960)
        assert replay.reason == "nonce already used"


class TestOAuth1OverHttp:
    async def test_json_bodies_are_not_signed(self, api: Api) -> None:
        """A JSON body is outside the signature: signing without it is what real clients do."""
        user = api.users[0]
        answer = await api.retweet(user, TWEET)
        assert answer.status == 200, answer.headers.get("x-sandbox-auth-failure")

    async def test_query_parameters_with_reserved_characters_are_signed_rfc3986(
        self, api: Api
    ) -> None:
        """Query values with spaces, '+', '~' and '*' verify when percent-encoded per RFC 3986."""
        user = api.users[0]
        path = "/2/users/me?note=a%20b%2Bc~d%2A"
        authorization = api.oauth1("GET", api.sandbox.url + path, user)
        answer = await api.call("GET", path, auth=authorization)
        assert answer.status == 200, answer.headers.get("x-sandbox-auth-failure")

    @pytest.mark.parametrize(
        ("consumer_secret", "token_secret", "offset", "reason"),
        [
            ("wrong", None, 0, "signature mismatch"),
            (None, "wrong", 0, "signature mismatch"),
            (None, None, -400, "timestamp outside the allowed window"),
            (None, None, 400, "timestamp outside the allowed window"),
        ],
    )
    async def test_bad_signatures_are_401_unauthorized(
        self,
        api: Api,
        consumer_secret: str | None,
        token_secret: str | None,
        offset: float,
        reason: str,
    ) -> None:
        """A wrong secret or a timestamp outside the window is a 401 about:blank problem."""
        user = api.users[0]
        path = f"/2/users/{user.user_id}/retweets"
        authorization = api.oauth1(
            "POST",
            api.sandbox.url + path,
            user,
            timestamp=api.now() + offset,
            consumer_secret=consumer_secret,
            token_secret=token_secret,
        )
        answer = await api.call("POST", path, auth=authorization, json_body={"tweet_id": TWEET})
        assert answer.status == 401
        assert answer.json == UNAUTHORIZED
        assert answer.headers["x-sandbox-auth-failure"] == reason
        assert await api.retweets_of(user) == []

    async def test_a_reused_nonce_is_401(self, api: Api) -> None:
        """Re-sending an identical signed request is refused; a freshly signed one is not."""
        user = api.users[0]
        path = f"/2/users/{user.user_id}/retweets/{TWEET}"
        authorization = api.oauth1("DELETE", api.sandbox.url + path, user)
        assert (await api.call("DELETE", path, auth=authorization)).status == 200
        replay = await api.call("DELETE", path, auth=authorization)
        assert replay.status == 401
        assert replay.headers["x-sandbox-auth-failure"] == "nonce already used"
        assert (await api.undo(user, TWEET)).status == 200

    async def test_the_date_header_follows_the_sandbox_clock(self, api: Api) -> None:
        """Every answer's `Date` is the sandbox clock's time, also after it jumps 8000 s, as a
        server whose clock is ahead answers (so a clock-skew rehearsal sees what the API would
        send, not this machine's time; adv22 F4)."""
        user = api.users[0]
        before = await api.retweet(user, TWEET)
        at_first = api.now()
        api.advance(8000)
        after = await api.undo(user, TWEET)
        for answer, sandbox_now in ((before, at_first), (after, api.now())):
            said = parsedate_to_datetime(answer.headers["Date"]).timestamp()
            assert abs(said - sandbox_now) <= 2
        assert parsedate_to_datetime(after.headers["Date"]).timestamp() - time.time() > 7990

    async def test_the_timestamp_window_follows_the_sandbox_clock(self, api: Api) -> None:
        """After the sandbox clock jumps 10 minutes, a request stamped before is refused."""
        user = api.users[0]
        path = f"/2/users/{user.user_id}/retweets/{TWEET}"
        stamped = api.now()
        api.advance(600)
        authorization = api.oauth1("DELETE", api.sandbox.url + path, user, timestamp=stamped)
        answer = await api.call("DELETE", path, auth=authorization)
        assert answer.status == 401
        assert answer.headers["x-sandbox-auth-failure"] == "timestamp outside the allowed window"

    @pytest.mark.parametrize(
        "authorization",
        [
            "none",
            'OAuth oauth_consumer_key="x"',
            "OAuth garbage",
            "Basic dXNlcjpwYXNz",
            "Bearer not-a-token",
        ],
    )
    async def test_missing_or_malformed_authorization_is_401(
        self, api: Api, authorization: str
    ) -> None:
        """No header, a malformed OAuth header or an unknown token is a 401 about:blank problem."""
        user = api.users[0]
        answer = await api.call(
            "POST",
            f"/2/users/{user.user_id}/retweets",
            auth=authorization,
            json_body={"tweet_id": TWEET},
        )
        assert answer.status == 401
        assert answer.json == UNAUTHORIZED
        assert answer.headers["Content-Type"].startswith("application/problem+json")

    async def test_a_token_of_another_consumer_key_is_refused(self, api: Api) -> None:
        """A valid access token signed under a consumer key it was not issued to is refused."""
        user = api.users[0]
        path = f"/2/users/{user.user_id}/retweets/{TWEET}"
        api.sandbox.state.auth.oauth1.consumers["other-app"] = "other-secret"
        from oauthlib.oauth1 import Client

        client = Client(
            "other-app",
            "other-secret",
            user.access_token,
            user.access_token_secret,
            timestamp=str(int(api.now())),
        )
        _, headers, _ = client.sign(api.sandbox.url + path, "DELETE")
        answer = await api.call("DELETE", path, auth=headers["Authorization"])
        assert answer.status == 401
        assert answer.headers["x-sandbox-auth-failure"] == "unknown access token"


class TestOAuth2Bearer:
    async def test_an_app_only_bearer_is_403_unsupported_authentication(self, api: Api) -> None:
        """A client-credentials (app-only) token gets the API's exact 403 body."""
        basic = base64.b64encode(
            f"{api.app.consumer_key}:{api.app.consumer_secret}".encode()
        ).decode()
        token = await api.call(
            "POST",
            "/oauth2/token",
            auth=f"Basic {basic}",
            body=b"grant_type=client_credentials",
            headers={"Content-Type": "application/x-www-form-urlencoded;charset=UTF-8"},
        )
        assert token.status == 200, token.text
        bearer = token.json["access_token"]
        user = api.users[0]
        answer = await api.call(
            "POST",
            f"/2/users/{user.user_id}/retweets",
            auth=f"Bearer {bearer}",
            json_body={"tweet_id": TWEET},
        )
        assert answer.status == 403
        assert answer.json == {
            "title": "Unsupported Authentication",
            "detail": "Authenticating with OAuth 2.0 Application-Only is forbidden for this "
            "endpoint.  Supported authentication types are [OAuth 1.0a User Context, "
            "OAuth 2.0 User Context].",
            "type": "https://api.twitter.com/2/problems/unsupported-authentication",
            "status": 403,
        }

    async def test_an_expired_user_token_is_401(self, api: Api) -> None:
        """Two hours after issue (on the sandbox clock) the access token no longer works."""
        user = api.users[1]
        assert (await api.retweet(user, TWEET, auth="oauth2")).status == 200
        api.advance(7200)
        answer = await api.undo(user, TWEET, auth="oauth2")
        assert answer.status == 401
        assert answer.json == UNAUTHORIZED
        assert await api.retweets_of(user) == [TWEET]

    async def test_a_token_without_tweet_write_is_403(self, api: Api) -> None:
        """A user token lacking the tweet.write scope is forbidden to retweet."""
        user = api.users[1]
        minted = await api.call(
            "POST",
            "/__sandbox/oauth2/tokens",
            auth="none",
            json_body={"user_id": user.user_id, "scopes": ["tweet.read", "users.read"]},
        )
        answer = await api.call(
            "POST",
            f"/2/users/{user.user_id}/retweets",
            auth=f"Bearer {minted.json['access_token']}",
            json_body={"tweet_id": TWEET},
        )
        assert answer.status == 403
        assert answer.json["type"] == "about:blank"
        assert "tweet.write" in answer.json["detail"]
        assert await api.retweets_of(user) == []


class TestAppPermissions:
    async def test_a_read_only_oauth1_app_is_403_oauth1_permissions(
        self, make_api: MakeApi
    ) -> None:
        """A Read-only app's OAuth 1.0a tokens cannot retweet, but can still read /2/users/me."""
        api = await make_api(oauth1_write=False)
        user = api.users[0]
        answer = await api.retweet(user, TWEET)
        assert answer.status == 403
        assert answer.json["type"] == "https://api.twitter.com/2/problems/oauth1-permissions"
        assert (await api.call("GET", "/2/users/me", user=user)).status == 200
        assert (await api.retweet(api.users[1], TWEET, auth="oauth2")).status == 200

    async def test_an_app_not_enrolled_is_403_client_forbidden(self, api: Api) -> None:
        """Switching enrolment off makes every call a 403 client-forbidden, client-not-enrolled."""
        await api.call("PATCH", "/__sandbox/app", auth="none", json_body={"enrolled": False})
        answer = await api.retweet(api.users[0], TWEET)
        assert answer.status == 403
        assert answer.json["type"] == "https://api.twitter.com/2/problems/client-forbidden"
        assert answer.json["reason"] == "client-not-enrolled"

    def test_user_ids_come_from_the_token_not_the_path(self) -> None:
        """The OAuth 1.0a token's owner is the authenticated user, and it is the token's prefix."""
        state = SandboxState(SandboxConfig(users=3), now=ManualClock().now())
        for user in state.world.users:
            assert user.access_token.split("-")[0] == user.user_id
            assert state.auth.oauth1.tokens[user.access_token].user_id == user.user_id
