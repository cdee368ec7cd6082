"""Interoperability: tweepy's AsyncClient, a client nobody here wrote, retweets and undoes through
the sandbox with OAuth 1.0a and with an OAuth 2.0 user token, and the sandbox verifies its
signatures. tweepy hard-codes https://api.twitter.com, so the sandbox serves TLS with a test
certificate authority and the client's aiohttp session resolves that host to the sandbox on
loopback, as a real deployment's DNS would.

tweepy and trustme are imported by the tests that use them: every xdist worker imports this
module to collect it, and only one runs it (the two cost about 70 ms of CPU in each)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bulkrt.sandbox import OffsetClock, Sandbox, SandboxConfig
from bulkrt.sandbox.loopback import LoopbackResolver

TWEET = "1228393702244134912"


@pytest.fixture
async def tls_sandbox() -> AsyncIterator[tuple[Sandbox, aiohttp.ClientSession, LoopbackResolver]]:
    """A sandbox serving HTTPS for api.twitter.com, and a session that trusts it and reaches it."""
    import trustme

    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("api.twitter.com", "api.x.com").configure_cert(server_context)
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)
    sandbox = Sandbox(SandboxConfig(users=2), clock=OffsetClock(), ssl_context=server_context)
    await sandbox.start()
    resolver = LoopbackResolver(sandbox.port)
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(resolver=resolver, ssl=client_context)
    )
    yield sandbox, session, resolver
    await session.close()
    await sandbox.close()


def client_for(session: aiohttp.ClientSession, **credentials: Any) -> Any:
    from tweepy.asynchronous import AsyncClient

    client = AsyncClient(**credentials)
    client.session = session
    return client


async def test_tweepy_retweets_and_undoes_with_oauth1(
    tls_sandbox: tuple[Sandbox, aiohttp.ClientSession, LoopbackResolver],
) -> None:
    """tweepy signs for https://api.twitter.com; the sandbox verifies it and records the retweet."""
    import tweepy

    sandbox, session, resolver = tls_sandbox
    app, user = sandbox.state.world.app, sandbox.state.world.users[0]
    client = client_for(
        session,
        consumer_key=app.consumer_key,
        consumer_secret=app.consumer_secret,
        access_token=user.access_token,
        access_token_secret=user.access_token_secret,
    )
    done = await client.retweet(TWEET)
    assert done.data == {"retweeted": True}
    assert sandbox.state.retweets[user.user_id] == {TWEET}
    with pytest.raises(tweepy.BadRequest) as already:
        await client.retweet(TWEET)
    assert "You cannot retweet a Tweet that you have already retweeted." in str(already.value)
    undone = await client.unretweet(TWEET)
    assert undone.data == {"retweeted": False}
    assert sandbox.state.retweets[user.user_id] == set()
    assert set(resolver.asked) == {"api.twitter.com"}


async def test_tweepy_retweets_with_an_oauth2_user_token(
    tls_sandbox: tuple[Sandbox, aiohttp.ClientSession, LoopbackResolver],
) -> None:
    """With a user access token tweepy first asks /2/users/me for the id, then retweets."""
    sandbox, session, _ = tls_sandbox
    user = sandbox.state.world.users[1]
    client = client_for(session, bearer_token=user.oauth2_access_token)
    done = await client.retweet(TWEET, user_auth=False)
    assert done.data == {"retweeted": True}
    assert sandbox.state.retweets[user.user_id] == {TWEET}
    undone = await client.unretweet(TWEET, user_auth=False)
    assert undone.data == {"retweeted": False}
    assert sandbox.state.stats()["by_status"] == {"200": 3}


async def test_tweepy_with_a_wrong_secret_is_unauthorized(
    tls_sandbox: tuple[Sandbox, aiohttp.ClientSession, LoopbackResolver],
) -> None:
    """A signature made with a wrong consumer secret is refused, and tweepy reports 401."""
    import tweepy

    sandbox, session, _ = tls_sandbox
    app, user = sandbox.state.world.app, sandbox.state.world.users[0]
    client = client_for(
        session,
        consumer_key=app.consumer_key,
        consumer_secret="not-the-secret",
        access_token=user.access_token,
        access_token_secret=user.access_token_secret,
    )
    with pytest.raises(tweepy.Unauthorized):
        await client.retweet(TWEET)
    assert sandbox.state.retweets[user.user_id] == set()
