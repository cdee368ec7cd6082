"""OAuth 2.0 credentials that survive sharing, pauses and crashes (issue 12): several `bulkrt run`
processes on one accounts file, late and paused token answers, a kill during the write-back, a
symlinked accounts file, answers without a refresh token and ``env:`` secrets. The real CLI runs
in subprocesses against the sandbox on a real socket, with tokens that live a few seconds."""

from __future__ import annotations

import json
import os
import random
import signal
import stat
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from bulkrt.sandbox import FaultKind
from bulkrt.sandbox.config import Endpoint
from bulkrt.sandbox.faults import ScriptedFault
from bulkrt.shell.accounts import load_accounts
from tests.test_run import MakeWorld, World, eventually, fork_cli, rows, run_cli

ACCOUNTS = [f"acct{n:03d}" for n in range(1, 7)]
OAUTH2 = ["acct002", "acct004", "acct006"]
#: seeds of the randomised sharing test: one in CI; ``BULKRT_SHARING_SEEDS=20`` runs twenty
SHARING_SEEDS = range(int(os.environ.get("BULKRT_SHARING_SEEDS", "1")))


def ledger_statuses(ledger: Path) -> set[str]:
    """The statuses of every line of a ledger."""
    return {json.loads(line)["status"] for line in ledger.read_text().splitlines()}


def oauth2_entry(world: World, account: str) -> dict[str, str]:
    entry: dict[str, str] = json.loads(world.accounts.read_text())["accounts"][account]["oauth2"]
    return entry


def leftovers(directory: Path) -> list[str]:
    """Temporary files and refresh marks a write-back left behind."""
    return sorted(p.name for p in directory.iterdir() if p.name.endswith((".tmp", ".refreshing")))


async def run_all_ok(commands: list[list[str]]) -> list[subprocess.CompletedProcess[bytes]]:
    """Run ``commands`` as processes at once; each must exit 0. Returns their results."""
    results: list[subprocess.CompletedProcess[bytes]] = []

    async def one(args: list[str]) -> None:
        results.append(await run_cli(args))

    async with anyio.create_task_group() as group:
        for args in commands:
            group.start_soon(one, args)
    for done in results:
        assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()[-3000:]
    return results


async def run_with(world: World, job: Path, ledger: Path, *extra: str) -> list[str]:
    args = world.run_args(job, *extra)
    args[args.index("--ledger") + 1] = str(ledger)
    return args


class TestSharedAccountsFile:
    # Four runs only: every pair of them shares the file as two runs alone would (two at once
    # is the same code path with less contention), and the seeded mix below runs 2 to 5.
    @pytest.mark.parametrize("processes", [4])
    async def test_concurrent_runs_share_rotating_tokens(
        self, make_world: MakeWorld, processes: int
    ) -> None:
        """Four runs at once (own jobs and ledgers, one accounts file, tokens living 1.5 s, so
        each refreshes several times): all exit 0 with every item ok, the file stays valid with
        no leftovers, and its tokens work for a later run."""
        # 100 ms per request, two at a time: each run takes a few seconds, tokens live 1.5 s
        world = await make_world(token_ttl=1.5, limit=100, window=1.0, latency_ms=100)
        commands = []
        for n in range(processes):
            job = world.job(rows(ACCOUNTS, 10, first=1000 * (n + 1)), name=f"job{n}.csv")
            ledger = world.dir / f"ledger{n}.jsonl"
            commands.append(await run_with(world, job, ledger, "--concurrency", "2"))
        results = await run_all_ok(commands)
        for n in range(processes):
            ledger = world.dir / f"ledger{n}.jsonl"
            assert len(ledger.read_text().splitlines()) == 6 * 10
            assert ledger_statuses(ledger) == {"ok"}
            for account in ACCOUNTS:
                wanted = {str(1000 * (n + 1) + i) for i in range(10)}
                assert wanted <= world.retweets(account)
        # several refreshes per account, adopted by the other runs rather than repeated
        assert world.sandbox.state.stats()["refreshes"] >= 3 * len(OAUTH2)
        assert any(b"token_adopted" in done.stderr for done in results)
        load_accounts(world.accounts)  # still a valid accounts file
        assert leftovers(world.dir) == []
        later = await world.run(world.job(rows(ACCOUNTS, 2, first=9000), name="later.csv"))
        assert later.returncode == 0, later.stdout.decode() + later.stderr.decode()[-2000:]

    @pytest.mark.parametrize("seed", SHARING_SEEDS)
    async def test_any_mix_of_runs_and_token_lifetimes_keeps_every_account(
        self, make_world: MakeWorld, seed: int
    ) -> None:
        """For a seeded mix (2-5 runs, tokens living 1-3 s, 20-150 ms per request, 1-4 requests
        at a time, jobs of different sizes): every run exits 0 with every item ok, no refresh
        token is ever refused, the file is valid with no leftovers, and it works for a later
        run."""
        chance = random.Random(seed)
        world = await make_world(
            token_ttl=chance.uniform(1.0, 3.0),
            limit=100,
            window=1.0,
            latency_ms=chance.uniform(20, 150),
        )
        commands = []
        for n in range(chance.randint(2, 5)):
            per_account = chance.randint(3, 12)
            job = world.job(rows(ACCOUNTS, per_account, first=1000 * (n + 1)), name=f"j{n}.csv")
            concurrency = str(chance.randint(1, 4))
            ledger = world.dir / f"ledger{n}.jsonl"
            commands.append(await run_with(world, job, ledger, "--concurrency", concurrency))
        for done in await run_all_ok(commands):
            assert b"refresh token was refused" not in done.stdout
        for n in range(len(commands)):
            assert ledger_statuses(world.dir / f"ledger{n}.jsonl") == {"ok"}
        load_accounts(world.accounts)
        assert leftovers(world.dir) == []
        later = await world.run(world.job(rows(ACCOUNTS, 1, first=9000), name="later.csv"))
        assert later.returncode == 0, later.stdout.decode() + later.stderr.decode()[-2000:]


class TestLateAnswers:
    async def test_an_answer_later_than_the_read_timeout_is_used(
        self, make_world: MakeWorld
    ) -> None:
        """The token endpoint rotates and answers 2 s later, past the 0.5 s read timeout: the run
        waits for the answer, uses it and saves it; one refresh in all, every item ok."""
        world = await make_world(token_ttl=30, stall_seconds=2)
        world.sandbox.state.faults.script(
            ScriptedFault(FaultKind.STALL, endpoint=Endpoint.OAUTH2_TOKEN)
        )
        before = oauth2_entry(world, "acct002")["refresh_token"]
        done = await world.run(world.job(rows(["acct002"], 3)), "--read-timeout", "0.5")
        assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()[-2000:]
        assert world.sandbox.state.stats()["refreshes"] == 1
        assert oauth2_entry(world, "acct002")["refresh_token"] != before
        assert world.retweets("acct002") == {"100", "101", "102"}

    async def test_a_run_stopped_during_a_refresh_uses_the_answer_when_continued(
        self, make_world: MakeWorld
    ) -> None:
        """SIGSTOP while the token answer is on its way (the server rotated and answers 2 s
        later), SIGCONT a second later, when the 0.5 s read timeout has long passed: the answer
        that arrives after the pause is read and used; one refresh per account, every item ok."""
        world = await make_world(token_ttl=30, stall_seconds=2)
        world.sandbox.state.faults.script(
            ScriptedFault(FaultKind.STALL, endpoint=Endpoint.OAUTH2_TOKEN)
        )
        job = world.job(rows(["acct002", "acct004"], 3))
        async with fork_cli(world.run_args(job, "--read-timeout", "0.5")) as proc:
            await eventually(lambda: world.sandbox.state.stats()["refreshes"] >= 1)
            proc.send_signal(signal.SIGSTOP)
            await anyio.sleep(1)
            proc.send_signal(signal.SIGCONT)
            await proc.wait()
            assert proc.returncode == 0
        assert world.sandbox.state.stats()["refreshes"] == 2  # one per account, none repeated
        assert ledger_statuses(world.ledger) == {"ok"}
        assert world.retweets("acct002") == {"100", "101", "102"}
        load_accounts(world.accounts)

    async def test_a_lost_answer_pauses_the_account_and_says_so(
        self, make_world: MakeWorld
    ) -> None:
        """The connection breaks after the server rotated: the account is paused with a message
        that says the refresh token may be spent, it is not refreshed again in the run, and the
        other accounts finish."""
        world = await make_world(token_ttl=30)
        world.sandbox.state.faults.script(
            ScriptedFault(FaultKind.RESET_AFTER, endpoint=Endpoint.OAUTH2_TOKEN)
        )
        done = await world.run(world.job(rows(["acct001", "acct002"], 3)))
        assert done.returncode == 1
        out = done.stdout.decode()
        assert (
            "account acct002" in out and "answer was lost" in out and "may already be spent" in out
        )
        assert world.sandbox.state.stats()["refreshes"] == 1
        assert world.retweets("acct001") == {"100", "101", "102"}
        assert [n for n in leftovers(world.dir) if n.endswith(".refreshing")] == [
            "accounts.json.refreshing"
        ]


_KILL_AT_RENAME = """
import os, re, signal, sys

def _hook(event, args):
    name = os.path.basename(str(args[0])) if event == "os.rename" else ""
    if re.fullmatch(r"[.]accounts[.]json[.][^.]+[.]tmp", name):
        os.kill(os.getpid(), signal.SIGKILL)

sys.addaudithook(_hook)
"""


class TestCrashRecovery:
    async def test_a_kill_during_the_write_back_is_recovered_by_the_next_run(
        self, make_world: MakeWorld, tmp_path: Path
    ) -> None:
        """SIGKILL after the rotated tokens are in the temporary file but before the rename (an
        audit hook kills the process at the rename): the next run adopts that file, says so,
        and every item ends ok with the rotated tokens."""
        world = await make_world(token_ttl=30)
        hooks = tmp_path / "hooks"
        hooks.mkdir()
        (hooks / "sitecustomize.py").write_text(_KILL_AT_RENAME)
        job = world.job(rows(["acct002"], 3))
        env = dict(os.environ, PYTHONPATH=f"{hooks}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
        killed = await anyio.run_process(world.run_args(job), check=False, env=env)
        assert killed.returncode == -signal.SIGKILL
        assert world.sandbox.state.stats()["refreshes"] == 1
        temporary = [n for n in leftovers(world.dir) if n.endswith(".tmp")]
        assert len(temporary) == 1
        again = await world.run(job)
        assert again.returncode == 0, again.stdout.decode() + again.stderr.decode()[-2000:]
        assert f"adopted {temporary[0]}" in again.stderr.decode()
        # The old refresh token was spent by the killed run: only the adopted one could refresh
        # again (the 30 s token is within a minute of expiry) and let every item end ok.
        assert world.sandbox.state.stats()["refreshes"] == 2
        assert world.retweets("acct002") == {"100", "101", "102"}
        assert leftovers(world.dir) == []

    async def test_a_symlinked_accounts_file_is_written_through(
        self, make_world: MakeWorld, tmp_path: Path
    ) -> None:
        """The accounts path is a symlink: refreshes replace its target (keeping mode 0600), the
        link stays a link, and the next run works with the rotated tokens."""
        world = await make_world(token_ttl=30)
        real = tmp_path / "private" / "accounts.json"
        real.parent.mkdir()
        world.accounts.rename(real)
        real.chmod(0o600)
        world.accounts.symlink_to(real)
        before = json.loads(real.read_text())["accounts"]["acct002"]["oauth2"]["refresh_token"]
        done = await world.run(world.job(rows(["acct002"], 3)))
        assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()[-2000:]
        assert world.accounts.is_symlink() and world.accounts.resolve() == real
        assert json.loads(real.read_text())["accounts"]["acct002"]["oauth2"]["refresh_token"] != (
            before
        )
        assert stat.S_IMODE(real.stat().st_mode) == 0o600
        assert leftovers(real.parent) == [] and leftovers(world.dir) == []
        again = await world.run(world.job(rows(["acct002"], 3, first=200), name="again.csv"))
        assert again.returncode == 0, again.stdout.decode() + again.stderr.decode()[-2000:]

    async def test_an_answer_without_a_refresh_token_keeps_the_old_one(
        self, make_world: MakeWorld
    ) -> None:
        """The token endpoint answers without ``refresh_token`` (old one stays valid): the file
        keeps the old refresh token (never null) through several refreshes, and it still works
        for a later run."""
        world = await make_world(token_ttl=2, omit_refresh_token=True)
        before = oauth2_entry(world, "acct002")["refresh_token"]
        done = await world.run(world.job(rows(["acct002"], 12)))
        assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()[-2000:]
        assert world.sandbox.state.stats()["refreshes"] >= 2
        assert oauth2_entry(world, "acct002")["refresh_token"] == before
        again = await world.run(world.job(rows(["acct002"], 2, first=300), name="again.csv"))
        assert again.returncode == 0, again.stdout.decode() + again.stderr.decode()[-2000:]

    async def test_env_secrets_in_a_world_readable_file_never_land_there_in_clear(
        self, make_world: MakeWorld
    ) -> None:
        """An accounts file of mode 0644 whose tokens are ``env:`` references: after the rotation
        the new tokens are in the file, which is now 0600 (never a secret in a file others can
        read), a warning names the out-of-date variable, and the file works for a later run."""
        world = await make_world(token_ttl=30)
        document = json.loads(world.accounts.read_text())
        oauth2 = document["accounts"]["acct002"]["oauth2"]
        env = dict(os.environ)
        env["T_ACCESS"], env["T_REFRESH"] = oauth2["access_token"], oauth2["refresh_token"]
        oauth2["access_token"], oauth2["refresh_token"] = "env:T_ACCESS", "env:T_REFRESH"
        world.accounts.write_text(json.dumps(document))
        world.accounts.chmod(0o644)
        args = world.run_args(world.job(rows(["acct002"], 3)))
        done = await run_cli(args, env=env)
        assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()[-2000:]
        assert stat.S_IMODE(world.accounts.stat().st_mode) == 0o600
        assert "env_secret_rotated" in done.stderr.decode()
        written = oauth2_entry(world, "acct002")
        assert written["refresh_token"] not in ("env:T_REFRESH", env["T_REFRESH"])
        again = await world.run(world.job(rows(["acct002"], 2, first=400), name="again.csv"))
        assert again.returncode == 0, again.stdout.decode() + again.stderr.decode()[-2000:]


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Subprocesses get no API base from the caller's environment."""
    monkeypatch.delenv("BULKRT_API_BASE", raising=False)
    assert sys.executable
