"""Fixtures for the sandbox's tests: a sandbox on a real socket, and a small HTTP client that
signs its requests the way real X clients do (OAuth 1.0a via oauthlib, or a Bearer token)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDictProxy
from oauthlib.oauth1 import Client as OAuth1Client

from bulkrt.sandbox import OffsetClock, Sandbox, SandboxConfig
from bulkrt.sandbox.world import SandboxUser

FORM = "application/x-www-form-urlencoded"


@dataclass
class Answer:
    """A response as the tests look at it."""

    status: int
    headers: CIMultiDictProxy[str]
    text: str

    @property
    def json(self) -> Any:
        return json.loads(self.text)


class Api:
    """Talks to one sandbox over HTTP as a well-behaved X client would."""

    def __init__(self, sandbox: Sandbox, session: aiohttp.ClientSession) -> None:
        self.sandbox = sandbox
        self.session = session
        self.app = sandbox.state.world.app

    @property
    def users(self) -> tuple[SandboxUser, ...]:
        return self.sandbox.state.world.users

    def now(self) -> float:
        return self.sandbox.clock.now()

    def advance(self, seconds: float) -> None:
        clock = self.sandbox.clock
        assert isinstance(clock, OffsetClock)
        clock.advance(seconds)

    def oauth1(
        self,
        method: str,
        url: str,
        user: SandboxUser,
        *,
        timestamp: float | None = None,
        nonce: str | None = None,
        consumer_secret: str | None = None,
        token_secret: str | None = None,
        body: str | None = None,
        content_type: str | None = None,
    ) -> str:
        """An ``Authorization: OAuth ...`` value, signed on the sandbox clock by default."""
        client = OAuth1Client(
            self.app.consumer_key,
            consumer_secret if consumer_secret is not None else self.app.consumer_secret,
            user.access_token,
            token_secret if token_secret is not None else user.access_token_secret,
            timestamp=str(int(self.now() if timestamp is None else timestamp)),
            nonce=nonce,
        )
        headers = {"Content-Type": content_type} if content_type else None
        _, signed, _ = client.sign(url, method, body=body, headers=headers)  # type: ignore[arg-type]
        return str(signed["Authorization"])

    async def call(
        self,
        method: str,
        path: str,
        *,
        user: SandboxUser | None = None,
        auth: str = "oauth1",
        body: bytes | None = None,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """Send one request; ``auth`` is oauth1, oauth2, none, or a raw Authorization value."""
        url = self.sandbox.url + path
        sent = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body).encode()
            sent.setdefault("Content-Type", "application/json")
        if user is not None and auth == "oauth1":
            # a form-encoded body is part of the signature (RFC 5849 §3.4.1.3.1); JSON is not
            content_type = sent.get("Content-Type", "")
            form = body.decode() if body and content_type.startswith(FORM) else None
            sent["Authorization"] = self.oauth1(
                method, url, user, body=form, content_type=FORM if form is not None else None
            )
        elif user is not None and auth == "oauth2":
            sent["Authorization"] = f"Bearer {user.oauth2_access_token}"
        elif auth not in ("oauth1", "oauth2", "none"):
            sent["Authorization"] = auth
        async with self.session.request(method, url, data=body, headers=sent) as response:
            return Answer(response.status, response.headers, await response.text())

    async def retweet(self, user: SandboxUser, tweet_id: str, auth: str = "oauth1") -> Answer:
        return await self.call(
            "POST",
            f"/2/users/{user.user_id}/retweets",
            user=user,
            auth=auth,
            json_body={"tweet_id": tweet_id},
        )

    async def undo(self, user: SandboxUser, tweet_id: str, auth: str = "oauth1") -> Answer:
        return await self.call(
            "DELETE", f"/2/users/{user.user_id}/retweets/{tweet_id}", user=user, auth=auth
        )

    async def retweets_of(self, user: SandboxUser) -> list[str]:
        answer = await self.call("GET", f"/__sandbox/users/{user.user_id}/retweets", auth="none")
        assert answer.status == 200, answer.text
        return list(answer.json["tweet_ids"])

    async def stats(self) -> dict[str, Any]:
        answer = await self.call("GET", "/__sandbox/stats", auth="none")
        return dict(answer.json)


MakeApi = Callable[..., Awaitable[Api]]


@pytest.fixture
async def make_api() -> AsyncIterator[MakeApi]:
    """Start sandboxes with a given config (keyword arguments of `SandboxConfig`) on port 0."""
    started: list[tuple[Sandbox, aiohttp.ClientSession]] = []

    async def make(**config: Any) -> Api:
        config.setdefault("users", 3)
        sandbox = Sandbox(SandboxConfig(**config), clock=OffsetClock())
        await sandbox.start()
        # a fresh connection per request, so a reset never hits a pooled connection and
        # aiohttp's silent retry of idempotent requests cannot hide it
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
        started.append((sandbox, session))
        return Api(sandbox, session)

    yield make
    for sandbox, session in started:
        await session.close()
        await sandbox.close()


@pytest.fixture
async def api(make_api: MakeApi) -> Api:
    """A default sandbox: 3 users, the pro preset, production-like answers."""
    return await make_api()
