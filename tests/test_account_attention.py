"""Credential problems pause the account, not the items (issue 12): a 401 or an
authentication-kind 403 stops the account after its first refused request, ends its items in
``error`` (so the next run retries them once the credentials are fixed), and the summary names the
account with the real cause for its kind of credentials. The real CLI runs against the sandbox."""

from __future__ import annotations

import json

from tests.test_run import MakeWorld, World, rows

ACCOUNTS = [f"acct{n:03d}" for n in range(1, 7)]
OAUTH1 = ["acct001", "acct003", "acct005"]
OAUTH2 = ["acct002", "acct004", "acct006"]


def statuses(world: World) -> dict[str, set[str]]:
    """Per account, the statuses of its latest ledger lines."""
    latest: dict[str, dict[str, object]] = {}
    for line in world.lines():
        latest[str(line["key"])] = line
    found: dict[str, set[str]] = {}
    for line in latest.values():
        found.setdefault(str(line["account"]), set()).add(str(line["status"]))
    return found


def requests_of(world: World, account: str) -> int:
    return int(world.sandbox.state.stats()["by_user"].get(world.user_id(account), 0))


class TestCredentialsNeedAttention:
    async def test_oauth1_permissions_pause_those_accounts_until_fixed(
        self, make_world: MakeWorld
    ) -> None:
        """The app lacks OAuth 1.0a write permission: each OAuth 1.0a account sends one request,
        its items end error, the summary says to set Read and Write and authorise again; the
        OAuth 2.0 accounts finish. Once the permission is granted, the same command retries the
        paused items and exits 0."""
        world = await make_world(oauth1_write=False)
        job = world.job(rows(ACCOUNTS, 5))
        done = await world.run(job)
        assert done.returncode == 1
        out = done.stdout.decode()
        found = statuses(world)
        for account in OAUTH1:
            assert f"needs attention: account {account}: the app's OAuth 1.0a permissions" in out
            assert found[account] == {"error"}
            assert requests_of(world, account) == 1
        for account in OAUTH2:
            assert found[account] == {"ok"}
        lines = [line for line in world.lines() if line["account"] in OAUTH1]
        assert {line["error"]["type"] for line in lines} == {"oauth1-permissions"}
        world.sandbox.state.auth.oauth1_write = True
        again = await world.run(job)
        assert again.returncode == 0, again.stdout.decode() + again.stderr.decode()[-2000:]
        assert {s for found in statuses(world).values() for s in found} == {"ok"}

    async def test_an_app_that_is_not_enrolled_pauses_every_account(
        self, make_world: MakeWorld
    ) -> None:
        """403 client-forbidden: every account stops after one request, every item ends error
        (none rejected), and each account is named with the enrolment to fix."""
        world = await make_world(enrolled=False)
        done = await world.run(world.job(rows(ACCOUNTS, 4)))
        assert done.returncode == 1
        out = done.stdout.decode()
        for account in ACCOUNTS:
            assert f"needs attention: account {account}: the app is not enrolled" in out
            assert requests_of(world, account) == 1
        assert {s for found in statuses(world).values() for s in found} == {"error"}

    async def test_an_oauth1_401_says_oauth1_not_refresh(self, make_world: MakeWorld) -> None:
        """Refused OAuth 1.0a credentials: the ledger and the summary name OAuth 1.0a and the
        keys to check, never a refresh that does not exist for that kind."""
        world = await make_world()
        document = json.loads(world.accounts.read_text())
        document["accounts"]["acct003"]["oauth1"]["access_token_secret"] = "wrong-secret-0123456789"
        world.accounts.write_text(json.dumps(document))
        done = await world.run(world.job(rows(["acct001", "acct003"], 3)))
        assert done.returncode == 1
        out = done.stdout.decode()
        assert "account acct003: the API refused its OAuth 1.0a credentials" in out
        details = [
            line["error"]["detail"] for line in world.lines() if line["account"] == "acct003"
        ]
        assert details and all("OAuth 1.0a" in d and "refresh failed" not in d for d in details)
        assert statuses(world)["acct001"] == {"ok"}
