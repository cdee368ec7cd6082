"""OAuth 2.0 tokens shared through Redis (`RedisCredentialStore`), against a real
``redis-server`` and the sandbox's token endpoint on a real socket: processes with their own
accounts files (like separate machines) refreshing one account at once send one refresh per
generation, none ends with a dead token, every file and Redis end with the latest tokens; a
holder that died frees the lock when it expires, and a refresh whose answer was lost is marked
for the next holder."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from redis.asyncio import Redis

from bulkrt.fleet.connection import connect
from bulkrt.fleet.credentials_store import RedisCredentialStore
from bulkrt.shell.accounts import load_accounts
from bulkrt.shell.client import XClient
from bulkrt.shell.credentials import OAuth2Bearer, authorizer_for
from bulkrt.shell.tokens import TokenSet
from tests.redis_server import RedisServer
from tests.test_run import MakeWorld, World, run_cli

PREFIX = "bulkrt:"
ACCOUNT = "acct002"  # an OAuth 2.0 account of the sandbox's accounts file

#: one machine (a process forked from the test's, `tests.test_run.CliChild`): its own accounts
#: file, refreshing ``ACCOUNT`` once per round in step with the others (a barrier in Redis), then
#: retweeting with the token it ends with
_MACHINE = """
import asyncio, json, sys, time
from pathlib import Path
from bulkrt.fleet.connection import connect
from bulkrt.fleet.credentials_store import RedisCredentialStore
from bulkrt.shell.accounts import load_accounts
from bulkrt.shell.client import XClient
from bulkrt.shell.credentials import authorizer_for

async def barrier(redis, name, processes):
    await redis.incr(name)
    while int(await redis.get(name)) < processes:
        await asyncio.sleep(0.01)

async def main(url, accounts, name, api, rounds, tweet, processes):
    redis = await connect(url)
    account = load_accounts(Path(accounts))[name]
    store = RedisCredentialStore(redis, "bulkrt:", Path(accounts), {name: account.user_id})
    async with XClient(api) as client:
        bearer = authorizer_for(account, token_endpoint=client.token, store=store, clock=time.time)
        for round in range(rounds):
            await barrier(redis, f"round{round}", processes)
            await bearer.refresh()
        await barrier(redis, "done", processes)
        answer = await client.retweet(bearer, account.user_id, tweet)
        print(json.dumps({"retweet": answer.http}))
    await redis.aclose()

url, accounts, name, api, rounds, tweet, processes = sys.argv[1:]
asyncio.run(main(url, accounts, name, api, int(rounds), tweet, int(processes)))
"""


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = await connect(redis_server.url)
    yield client
    await client.aclose()


def machine_file(world: World, n: int) -> Path:
    """A copy of the sandbox's accounts file for machine ``n``."""
    path = world.dir / f"machine{n}" / "accounts.json"
    path.parent.mkdir(exist_ok=True)
    shutil.copy2(world.accounts, path)
    return path


def file_tokens(path: Path) -> dict[str, str]:
    entry: dict[str, str] = json.loads(path.read_text())["accounts"][ACCOUNT]["oauth2"]
    return entry


def store_for(redis: Redis, world: World, path: Path, **options: float) -> RedisCredentialStore:
    return RedisCredentialStore(redis, PREFIX, path, {ACCOUNT: world.user_id(ACCOUNT)}, **options)


def bearer_for(
    world: World, path: Path, store: RedisCredentialStore, client: XClient
) -> OAuth2Bearer:
    bearer = authorizer_for(
        load_accounts(path)[ACCOUNT], token_endpoint=client.token, store=store, clock=time.time
    )
    assert isinstance(bearer, OAuth2Bearer)
    return bearer


class TestAcrossMachines:
    async def test_concurrent_refreshes_rotate_once_per_generation(
        self, make_world: MakeWorld, redis: Redis, redis_server: RedisServer
    ) -> None:
        """Four processes, each with its own accounts file, refresh one account at once, three
        rounds: the token endpoint sees exactly three refreshes (one per generation, none
        refused), every process then retweets with its token, every file holds the tokens
        Redis holds (version 4: copied in, then three rotations), and Redis's refresh token
        still works."""
        world = await make_world(token_ttl=3600)
        processes, rounds = 4, 3
        files = [machine_file(world, n) for n in range(processes)]
        outputs: list[str] = []

        async def machine(n: int) -> None:
            args = [
                sys.executable, "-c", _MACHINE, redis_server.url, str(files[n]), ACCOUNT,
                world.sandbox.url, str(rounds), str(5000 + n), str(processes),
            ]  # fmt: skip
            done = await run_cli(args)
            assert done.returncode == 0, done.stderr.decode()[-3000:]
            outputs.append(done.stdout.decode())

        async with anyio.create_task_group() as group:
            for n in range(processes):
                group.start_soon(machine, n)
        assert world.sandbox.state.stats()["refreshes"] == rounds
        # structlog's default output shares stdout: the answer is the last line
        assert [json.loads(out.splitlines()[-1]) for out in outputs] == [{"retweet": 200}] * 4
        assert sum(out.count("token_refreshed") for out in outputs) == rounds
        assert world.retweets(ACCOUNT) == {str(5000 + n) for n in range(processes)}
        held = await redis.hgetall(f"{PREFIX}u:{{{world.user_id(ACCOUNT)}}}:cred")
        assert held["version"] == str(1 + rounds)
        for path in files:
            tokens = file_tokens(path)
            assert (tokens["access_token"], tokens["refresh_token"]) == (
                held["access_token"],
                held["refresh_token"],
            )
        # Redis's refresh token is the live one: one more refresh from it goes through
        async with XClient(world.sandbox.url) as client:
            store = store_for(redis, world, files[0])
            bearer = bearer_for(world, files[0], store, client)
            await bearer.refresh()
        assert world.sandbox.state.stats()["refreshes"] == rounds + 1


class TestOneMachine:
    async def test_the_first_file_seeds_redis_and_redis_wins_after(
        self, make_world: MakeWorld, redis: Redis
    ) -> None:
        """Redis holds nothing: a lease copies the accounts file's tokens in (version 1). A
        second machine whose file holds other tokens gets Redis's, and its file is brought up
        to date by the lease."""
        world = await make_world(token_ttl=3600)
        first, second = machine_file(world, 0), machine_file(world, 1)
        original = file_tokens(first)
        document = json.loads(second.read_text())
        document["accounts"][ACCOUNT]["oauth2"]["access_token"] = "an-older-access-token"
        second.write_text(json.dumps(document))
        async with store_for(redis, world, first).lease(ACCOUNT) as lease:
            assert lease.stored is not None
            assert lease.stored.access_token == original["access_token"]
        held = await redis.hgetall(f"{PREFIX}u:{{{world.user_id(ACCOUNT)}}}:cred")
        assert (held["access_token"], held["version"]) == (original["access_token"], "1")
        async with store_for(redis, world, second).lease(ACCOUNT) as lease:
            assert lease.stored is not None
            assert lease.stored.access_token == original["access_token"]
        assert file_tokens(second)["access_token"] == original["access_token"]

    async def test_a_dead_holders_lock_frees_when_it_expires(
        self, make_world: MakeWorld, redis: Redis
    ) -> None:
        """A lock left by a holder that died (it expires in 0.5 s) is waited for, then taken;
        a lease that ends releases its lock at once for the next one."""
        world = await make_world(token_ttl=3600)
        path = machine_file(world, 0)
        lock = f"{PREFIX}u:{{{world.user_id(ACCOUNT)}}}:refresh"
        await redis.set(lock, "a-dead-holder", px=500)
        store = store_for(redis, world, path, lock_ttl=2.0)
        async with store.lease(ACCOUNT):
            assert await redis.get(lock) not in (None, "a-dead-holder")
        assert await redis.get(lock) is None
        async with store.lease(ACCOUNT):
            pass

    async def test_a_lease_is_exclusive_and_renewed_while_held(
        self, make_world: MakeWorld, redis: Redis
    ) -> None:
        """While one lease is held for three times the lock's 1 s life, a second lease of the
        same account waits: it begins only after the first ended."""
        world = await make_world(token_ttl=3600)
        # a renewal every third of the lock's life: one later by two thirds of it lets the lock
        # expire, and a loaded machine can hold the event loop up for 0.2 s (the 0.3 s lock)
        store = store_for(redis, world, machine_file(world, 0), lock_ttl=1.0)
        order: list[str] = []

        async def hold(name: str, seconds: float) -> None:
            async with store.lease(ACCOUNT):
                order.append(f"{name} begins")
                await anyio.sleep(seconds)
                order.append(f"{name} ends")

        async with anyio.create_task_group() as group:
            group.start_soon(hold, "first", 3.0)
            await anyio.sleep(0.1)
            group.start_soon(hold, "second", 0)
        assert order == ["first begins", "first ends", "second begins", "second ends"]

    async def test_a_lost_refresh_is_marked_for_the_next_holder(
        self, make_world: MakeWorld, redis: Redis
    ) -> None:
        """A refresh begun and never saved (its answer lost) is seen by the next lease, naming
        this process; saving rotated tokens clears it, counts a version, and writes the file."""
        world = await make_world(token_ttl=3600)
        path = machine_file(world, 0)
        store = store_for(redis, world, path)
        async with store.lease(ACCOUNT) as lease:
            assert lease.lost is None
            await lease.begin_refresh()
        async with store.lease(ACCOUNT) as lease:
            assert lease.lost is not None and lease.lost.pid == os.getpid()
            rotated = TokenSet("a-new-access-token", "a-new-refresh-token", time.time() + 3600)
            await lease.save(rotated)
        async with store.lease(ACCOUNT) as lease:
            assert lease.lost is None
            assert lease.stored == rotated
        held = await redis.hgetall(f"{PREFIX}u:{{{world.user_id(ACCOUNT)}}}:cred")
        assert (held["refresh_token"], held["version"]) == ("a-new-refresh-token", "2")
        assert file_tokens(path)["refresh_token"] == "a-new-refresh-token"

    async def test_an_abandoned_refresh_leaves_no_mark(
        self, make_world: MakeWorld, redis: Redis
    ) -> None:
        """A refresh begun and then abandoned (not sent, or refused) leaves no mark."""
        world = await make_world(token_ttl=3600)
        store = store_for(redis, world, machine_file(world, 0))
        async with store.lease(ACCOUNT) as lease:
            await lease.begin_refresh()
            await lease.abandon_refresh()
        async with store.lease(ACCOUNT) as lease:
            assert lease.lost is None

    async def test_an_error_inside_a_lease_is_raised_as_is_and_frees_the_lock(
        self, make_world: MakeWorld, redis: Redis
    ) -> None:
        """An exception raised while a lease is held comes out unchanged (not wrapped in a
        group), and the lock is released."""
        world = await make_world(token_ttl=3600)
        store = store_for(redis, world, machine_file(world, 0))
        with pytest.raises(LookupError, match="inside"):
            async with store.lease(ACCOUNT):
                raise LookupError("inside")
        assert await redis.get(f"{PREFIX}u:{{{world.user_id(ACCOUNT)}}}:refresh") is None
