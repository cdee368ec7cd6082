"""bulkrt's HTTP client and per-account credentials against the sandbox on a real socket:
fresh OAuth 1.0a signatures per attempt, no silent resends, timeouts, and OAuth 2.0 refresh that is
single-flight and written to the accounts file before the new token is used."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from bulkrt.commands.sandbox import write_accounts_file
from bulkrt.core.outcome import FailureKind
from bulkrt.sandbox import FaultKind, OffsetClock, Sandbox, SandboxConfig
from bulkrt.sandbox.faults import ScriptedFault
from bulkrt.sandbox.oauth2 import DEFAULT_SCOPES
from bulkrt.shell.accounts import Account, load_accounts
from bulkrt.shell.client import Timeouts, XClient
from bulkrt.shell.credentials import (
    OAuth1Signer,
    OAuth2Bearer,
    ReauthorizationNeeded,
    TokenSet,
)
from bulkrt.shell.file_store import FileCredentialStore
from bulkrt.shell.tokens import TokenLease


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    """A sandbox with 2-minute access tokens, so refresh-ahead is easy to reach."""
    async with Sandbox(
        SandboxConfig(users=2, token_ttl=120, stall_seconds=3), clock=OffsetClock()
    ) as sb:
        yield sb


@pytest.fixture
def accounts_path(sandbox: Sandbox, tmp_path: Path) -> Path:
    path = tmp_path / "accounts.json"
    write_accounts_file(
        path, sandbox.state.world.accounts_file(expires_at=sandbox.clock.now() + 120)
    )
    return path


def bearer_for(
    sandbox: Sandbox, client: XClient, account: Account, path: Path, persisted: list[TokenSet]
) -> OAuth2Bearer:
    assert account.oauth2 is not None
    return OAuth2Bearer(
        account.name,
        account.oauth2,
        token_endpoint=client.token,
        store=Recording(FileCredentialStore(path), persisted),
        clock=sandbox.clock.now,
    )


class Recording:
    """The accounts file as a credential store, noting each save (or failing it, to test that)."""

    def __init__(
        self, store: FileCredentialStore, saved: list[TokenSet], fail: Exception | None = None
    ) -> None:
        self.store, self.saved, self.fail = store, saved, fail

    @asynccontextmanager
    async def lease(self, account: str) -> AsyncIterator[TokenLease]:
        async with self.store.lease(account) as lease:
            real_save = lease.save

            async def save(tokens: TokenSet) -> None:
                if self.fail is not None:
                    raise self.fail
                await real_save(tokens)
                self.saved.append(tokens)

            lease.save = save  # type: ignore[method-assign]
            yield lease


class TestOAuth1:
    async def test_each_attempt_is_signed_afresh(
        self, sandbox: Sandbox, accounts_path: Path
    ) -> None:
        """The same request sent twice gets two signatures, so neither is refused as a replay."""
        account = load_accounts(accounts_path)["acct001"]
        assert account.oauth1 is not None
        signer = OAuth1Signer(account.oauth1)
        async with XClient(sandbox.url) as client:
            first = await client.undo(signer, account.user_id, "20")
            second = await client.undo(signer, account.user_id, "20")
        assert (first.http, second.http) == (200, 200)
        assert first.json() == {"data": {"retweeted": False}}
        assert first.headers["x-rate-limit-remaining"] == "49"

    async def test_aiohttp_never_resends_on_its_own(
        self, sandbox: Sandbox, accounts_path: Path
    ) -> None:
        """After a reset once the undo took effect, the client reports a network failure and exactly
        one request reached the API (aiohttp's silent resend of a DELETE is refused)."""
        account = load_accounts(accounts_path)["acct001"]
        assert account.oauth1 is not None
        sandbox.state.retweets[account.user_id].add("20")
        sandbox.state.faults.script(ScriptedFault(FaultKind.RESET_AFTER))
        async with XClient(sandbox.url) as client:
            exchange = await client.undo(OAuth1Signer(account.oauth1), account.user_id, "20")
        assert exchange.http is None
        assert exchange.failure is not None and exchange.failure.kind is FailureKind.NETWORK
        assert sandbox.state.stats()["requests"] == 1
        assert sandbox.state.retweets[account.user_id] == set()

    async def test_a_stalled_answer_times_out(self, sandbox: Sandbox, accounts_path: Path) -> None:
        """An answer slower than the read timeout is a timeout failure, not a hang."""
        account = load_accounts(accounts_path)["acct001"]
        assert account.oauth1 is not None
        sandbox.state.faults.script(ScriptedFault(FaultKind.STALL))
        async with XClient(sandbox.url, timeouts=Timeouts(connect=1, read=0.3, total=2)) as client:
            exchange = await client.retweet(OAuth1Signer(account.oauth1), account.user_id, "20")
        assert exchange.failure is not None and exchange.failure.kind is FailureKind.TIMEOUT


class TestOAuth2:
    async def test_a_token_near_expiry_is_refreshed_and_persisted_first(
        self, sandbox: Sandbox, accounts_path: Path
    ) -> None:
        """Within a minute of expiry the token is refreshed once, the rotated tokens are in the
        accounts file, and the request goes out with the new token."""
        account = load_accounts(accounts_path)["acct002"]
        persisted: list[TokenSet] = []
        assert isinstance(sandbox.clock, OffsetClock)
        async with XClient(sandbox.url) as client:
            bearer = bearer_for(sandbox, client, account, accounts_path, persisted)
            sandbox.clock.advance(70)
            exchange = await client.retweet(bearer, account.user_id, "20")
        assert exchange.http == 200
        assert sandbox.state.stats()["refreshes"] == 1
        text = await anyio.Path(accounts_path).read_text()
        written = json.loads(text)["accounts"]["acct002"]["oauth2"]
        assert written["refresh_token"] == persisted[0].refresh_token
        assert written["refresh_token"] != account.oauth2.refresh_token  # type: ignore[union-attr]
        reloaded = load_accounts(accounts_path)["acct002"].oauth2
        assert reloaded is not None and reloaded.access_token == persisted[0].access_token

    async def test_concurrent_requests_share_one_refresh(
        self, sandbox: Sandbox, accounts_path: Path
    ) -> None:
        """Twenty requests that all find the token stale cause exactly one refresh."""
        account = load_accounts(accounts_path)["acct002"]
        assert isinstance(sandbox.clock, OffsetClock)
        async with XClient(sandbox.url) as client:
            bearer = bearer_for(sandbox, client, account, accounts_path, [])
            sandbox.clock.advance(70)
            statuses: list[int | None] = []

            async def one(n: int) -> None:
                statuses.append((await client.retweet(bearer, account.user_id, str(100 + n))).http)

            async with anyio.create_task_group() as tg:
                for n in range(20):
                    tg.start_soon(one, n)
        assert statuses == [200] * 20
        assert sandbox.state.stats()["refreshes"] == 1

    async def test_a_failed_write_back_keeps_the_new_token_unused(
        self, sandbox: Sandbox, accounts_path: Path
    ) -> None:
        """If the tokens cannot be persisted, the refresh fails and no request uses the new one."""
        account = load_accounts(accounts_path)["acct002"]
        assert account.oauth2 is not None
        broken = Recording(FileCredentialStore(accounts_path), [], fail=OSError("disk full"))
        assert isinstance(sandbox.clock, OffsetClock)
        async with XClient(sandbox.url) as client:
            bearer = OAuth2Bearer(
                account.name,
                account.oauth2,
                token_endpoint=client.token,
                store=broken,
                clock=sandbox.clock.now,
            )
            sandbox.clock.advance(70)
            with pytest.raises(OSError, match="disk full"):
                await client.retweet(bearer, account.user_id, "20")
        assert sandbox.state.stats()["requests"] == 0

    async def test_after_a_401_one_refresh_recovers(
        self, sandbox: Sandbox, accounts_path: Path
    ) -> None:
        """A revoked access token gives 401; refreshing once and resending succeeds (the scheduler
        asks for one refresh per credential generation, see tests/test_dispatcher.py)."""
        account = load_accounts(accounts_path)["acct002"]
        assert account.oauth2 is not None
        async with XClient(sandbox.url) as client:
            bearer = bearer_for(sandbox, client, account, accounts_path, [])
            sandbox.state.auth.tokens.revoke(
                {"token": account.oauth2.access_token, "client_id": account.oauth2.client_id}, None
            )
            assert (await client.retweet(bearer, account.user_id, "20")).http == 401
            await bearer.refresh()
            assert (await client.retweet(bearer, account.user_id, "20")).http == 200
        assert sandbox.state.stats()["refreshes"] == 1

    async def test_a_refused_refresh_token_names_the_account(
        self, sandbox: Sandbox, accounts_path: Path
    ) -> None:
        """When the refresh token was already used elsewhere, the error names the account and says
        it must be authorised again."""
        account = load_accounts(accounts_path)["acct002"]
        assert account.oauth2 is not None
        sandbox.state.auth.tokens.token(
            {
                "grant_type": "refresh_token",
                "refresh_token": account.oauth2.refresh_token or "",
                "client_id": account.oauth2.client_id,
            },
            None,
            sandbox.clock.now(),
        )
        async with XClient(sandbox.url) as client:
            bearer = bearer_for(sandbox, client, account, accounts_path, [])
            with pytest.raises(ReauthorizationNeeded) as refused:
                await bearer.refresh()
        assert "account acct002" in str(refused.value)
        assert "authorise the app again" in str(refused.value)


class TestRefusedRefresh:
    async def test_a_refused_refresh_rereads_the_file_before_giving_up(
        self, sandbox: Sandbox, accounts_path: Path
    ) -> None:
        """The refresh token was spent elsewhere, and new tokens reach the file while the refresh
        is under way (written by something that took no lock): the refusal is followed by one
        re-read, the new tokens are adopted, and the request succeeds with them."""
        account = load_accounts(accounts_path)["acct002"]
        assert account.oauth2 is not None
        tokens = sandbox.state.auth.tokens
        spend = {"grant_type": "refresh_token", "client_id": account.oauth2.client_id}
        tokens.token({**spend, "refresh_token": account.oauth2.refresh_token or ""}, None, 0)
        access, refresh = tokens.issue(
            account.user_id, frozenset(DEFAULT_SCOPES), sandbox.clock.now()
        )
        file_store = FileCredentialStore(accounts_path)

        class Meanwhile:
            @asynccontextmanager
            async def lease(self, name: str) -> AsyncIterator[TokenLease]:
                async with file_store.lease(name) as lease:
                    path = anyio.Path(accounts_path)
                    document = json.loads(await path.read_text())
                    oauth2 = document["accounts"][name]["oauth2"]
                    oauth2["access_token"], oauth2["refresh_token"] = access, refresh
                    await path.write_text(json.dumps(document))
                    yield lease

        async with XClient(sandbox.url) as client:
            bearer = OAuth2Bearer(
                account.name,
                account.oauth2,
                token_endpoint=client.token,
                store=Meanwhile(),
                clock=sandbox.clock.now,
            )
            await bearer.refresh()
            exchange = await client.retweet(bearer, account.user_id, "20")
        assert exchange.http == 200
