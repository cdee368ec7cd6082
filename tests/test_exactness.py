"""Rollback and resume stay exact under faults, at the level an operator sees them: the real CLI in
a subprocess against the sandbox over real sockets; assertions on exit codes, messages, the
ledger and the sandbox's recorded retweets."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from bulkrt.sandbox import FaultKind, OffsetClock
from bulkrt.sandbox.config import Endpoint, HiddenLimit
from bulkrt.sandbox.faults import ScriptedFault
from tests.test_run import MakeWorld, World, eventually, fork_cli, run_cli

#: an address where nothing listens: every connection is refused before a byte is sent
CLOSED_PORT = "http://127.0.0.1:9"


def with_option(args: list[str], option: str, value: str) -> list[str]:
    """``args`` with ``option``'s value replaced."""
    at = args.index(option)
    return [*args[: at + 1], value, *args[at + 2 :]]


async def run_args(args: list[str]) -> subprocess.CompletedProcess[bytes]:
    return await run_cli(args)


async def roll_back(world: World, *extra: str) -> str:
    """`bulkrt rollback` into an undo job, then the undo run; returns rollback's output."""
    undo = world.dir / "undo.csv"
    made = await run_args(
        [sys.executable, "-m", "bulkrt", "rollback", str(world.ledger), "--out", str(undo), *extra]
    )
    assert made.returncode == 0, made.stderr.decode()
    if "nothing to undo" not in made.stdout.decode().splitlines():
        done = await world.run(undo)
        assert done.returncode == 0, done.stderr.decode()
    return made.stdout.decode()


def readable_lines(world: World) -> list[dict[str, Any]]:
    """The ledger's lines that parse (damage may have left some that do not)."""
    lines = []
    for raw in world.ledger.read_bytes().splitlines():
        try:
            lines.append(json.loads(raw))
        except ValueError:
            continue
    return lines


def by_tweet(world: World, account: str) -> dict[str, dict[str, Any]]:
    """The latest ledger line of each of ``account``'s retweets, by Tweet."""
    return {
        line["tweet_id"]: line
        for line in readable_lines(world)
        if line["account"] == account and line["action"] == "retweet"
    }


class TestProvedNoEffect:
    async def test_a_first_run_that_could_not_connect_leaves_preexisting_retweets_alone(
        self, make_world: MakeWorld
    ) -> None:
        """Every connection refused in the first run (nothing sent), then the resumed run hears
        "already retweeted": the retweet is the owner's (preexisting: true) and survives the
        campaign and its rollback; the campaign's own retweet is undone."""
        world = await make_world()
        owner = world.user_id("acct001")
        world.sandbox.state.retweets[owner].add("101")
        before = world.retweets("acct001")
        job = world.job([("acct001", "100", "retweet"), ("acct001", "101", "retweet")])
        refused = with_option(world.run_args(job, "--max-attempts", "2"), "--api-base", CLOSED_PORT)
        first = await run_args(refused)
        assert first.returncode == 3, first.stderr.decode()  # the API base answers nothing
        assert {line["status"] for line in world.lines()} <= {"error"}  # nothing finished
        again = await world.run(job)
        assert again.returncode == 0, again.stderr.decode()
        lines = by_tweet(world, "acct001")
        assert (lines["100"]["preexisting"], lines["101"]["preexisting"]) == (False, True)
        out = await roll_back(world)
        assert "1 undo item(s)" in out and "left alone: 1 retweeted before" in out
        assert world.retweets("acct001") == before

    async def test_a_refresh_that_failed_before_sending_is_no_evidence_of_a_retweet(
        self, make_world: MakeWorld
    ) -> None:
        """The OAuth 2.0 refresh before a retweet fails twice (no retweet request leaves), the
        third attempt hears "already retweeted": preexisting: true, kept by the rollback."""
        world = await make_world(token_ttl=30)
        owner = world.user_id("acct002")  # an OAuth 2.0 account
        world.sandbox.state.retweets[owner].add("101")
        world.sandbox.state.faults.script(
            ScriptedFault(FaultKind.E503, count=2, endpoint=Endpoint.OAUTH2_TOKEN)
        )
        job = world.job([("acct002", "101", "retweet")])
        done = await world.run(job)
        assert done.returncode == 0, done.stderr.decode()
        (line,) = world.lines()
        assert (line["status"], line["preexisting"]) == ("ok", True)
        assert line["attempts"] >= 3
        out = await roll_back(world)
        assert "0 undo item(s)" in out
        assert world.retweets("acct002") == {"101"}

    async def test_a_sigint_during_the_wait_after_a_hidden_429_then_resume_keeps_the_owners(
        self, make_world: MakeWorld
    ) -> None:
        """A hidden cap answers 429 (refused, not applied) to the retweet of a Tweet the owner
        had retweeted; SIGINT while the account is parked, then resume: "already retweeted" is
        the owner's (preexisting: true), and the campaign plus its rollback leave it in place."""
        cap = HiddenLimit(1, 60.0, frozenset({Endpoint.RETWEET}))
        world = await make_world(hidden_caps=(cap,))
        owner = world.user_id("acct001")
        world.sandbox.state.retweets[owner].add("101")
        job = world.job([("acct001", "100", "retweet"), ("acct001", "101", "retweet")])
        async with fork_cli(world.run_args(job)) as process:
            await eventually(lambda: world.sandbox.state.by_status["429"] >= 1)
            await anyio.sleep(0.3)
            process.send_signal(signal.SIGINT)
            assert await process.wait() == 130
        assert "101" not in by_tweet(world, "acct001")
        clock = world.sandbox.clock
        assert isinstance(clock, OffsetClock)
        clock.advance(61.0)
        again = await world.run(job)
        assert again.returncode == 0, again.stderr.decode()
        assert by_tweet(world, "acct001")["101"]["preexisting"] is True
        await roll_back(world)
        assert world.retweets("acct001") == {"101"}


class TestUndecidable:
    async def test_a_repeated_row_of_a_retweet_the_campaign_made_is_the_campaigns(
        self, make_world: MakeWorld
    ) -> None:
        """A job that retweets one Tweet twice (a repeated row) hears "already retweeted" the
        second time: that retweet is the campaign's (preexisting: false), in the run that made
        it and in a later run too, while an owner's retweet in the same job stays the owner's."""
        world = await make_world()
        world.sandbox.state.retweets[world.user_id("acct001")].add("101")
        rows = [("acct001", "100", "retweet"), ("acct001", "101", "retweet")]
        job = world.job(rows + rows)
        done = await world.run(job)
        assert done.returncode == 0, done.stderr.decode()
        # sorted: lines come in the order the answers do, and the second 101 may be answered
        # before the second 100 (each waits only for the first row of its own Tweet)
        origins = sorted((line["tweet_id"], line["preexisting"]) for line in world.lines())
        assert origins == [("100", False), ("100", False), ("101", True), ("101", True)]
        again = world.job(rows * 3)  # a third row of each, sent by a later run
        assert (await world.run(again)).returncode == 0
        later = sorted((line["tweet_id"], line["preexisting"]) for line in world.lines()[-2:])
        assert later == [("100", False), ("101", True)]

    async def test_a_timed_out_retweet_then_already_retweeted_is_undecided_and_undone(
        self, make_world: MakeWorld
    ) -> None:
        """A retweet applied but answered too late (a timeout), then "already retweeted": the
        origin is undecidable (preexisting: null); status counts it, rollback undoes and lists
        it by default and leaves it alone with --leave-undecided."""
        # the answer comes 30 s late: however long a loaded machine holds the client up, its
        # 1 s read timeout fires first (with a 3 s stall, a client held up past 3 s could read the
        # answer, which had arrived before its timer ran: ok and the campaign's, once); the
        # sandbox's close cuts the stalled answer short
        world = await make_world(stall_seconds=30)
        world.sandbox.state.faults.script(
            ScriptedFault(FaultKind.STALL, user_id=world.user_id("acct001"))
        )
        job = world.job([("acct001", "100", "retweet")])
        done = await world.run(job, "--read-timeout", "1")
        assert done.returncode == 0, done.stderr.decode()
        (line,) = world.lines()
        assert (line["status"], line["preexisting"]) == ("ok", None)
        status = await run_args([sys.executable, "-m", "bulkrt", "status", str(world.ledger)])
        assert "1 retweet(s) of undecidable origin" in status.stdout.decode()
        as_json = await run_args(
            [sys.executable, "-m", "bulkrt", "status", str(world.ledger), "--json"]
        )
        assert json.loads(as_json.stdout)["undecided_origin"] == 1
        left = world.dir / "left.csv"
        kept = await run_args(
            [sys.executable, "-m", "bulkrt", "rollback", str(world.ledger), "--out", str(left),
             "--leave-undecided"]
        )  # fmt: skip
        assert "0 undo item(s)" in kept.stdout.decode()
        assert "left alone (--leave-undecided)" in kept.stdout.decode()
        out = await roll_back(world)
        assert "1 undo item(s)" in out and "1 of undecidable origin" in out
        assert "acct001 100" in out
        assert world.retweets("acct001") == set()


def damage(ledger: Path, how: str) -> None:
    """Damage a ledger the way a crash, a power cut or a restored backup does."""
    data = ledger.read_bytes()
    if how == "mid-line cut":
        lines = data.splitlines(keepends=True)
        # the middle one of the campaign's own retweets (so the damage can mislead a resume)
        own = [n for n, line in enumerate(lines) if b'"preexisting":false' in line] or [0]
        middle = own[len(own) // 2]
        lines[middle] = lines[middle][: len(lines[middle]) // 2] + b"\n"
        ledger.write_bytes(b"".join(lines))
    elif how == "zeroed tail":
        cut = len(data) * 2 // 3
        ledger.write_bytes(data[:cut] + b"\x00" * (len(data) - cut))
    else:  # half the file gone (an older backup)
        lines = data.splitlines(keepends=True)
        ledger.write_bytes(b"".join(lines[: len(lines) // 2]))


class TestLedgerDamage:
    @pytest.mark.parametrize("how", ["mid-line cut", "zeroed tail", "half the file gone"])
    async def test_a_damaged_ledger_then_resume_and_rollback_restore_every_account(
        self, make_world: MakeWorld, how: str
    ) -> None:
        """Ledger lines lost after a campaign (each kind of damage) are resent on resume and
        settled by the journal: the campaign's retweets stay the campaign's, the owners' stay
        theirs, and rollback plus its run leave every account exactly as before."""
        world = await make_world(limit=50)
        accounts = ["acct001", "acct002", "acct003"]
        tweets = [str(100 + n) for n in range(6)]
        for n, account in enumerate(accounts):
            world.sandbox.state.retweets[world.user_id(account)].update(tweets[n : n + 2])
        before = {a: world.retweets(a) for a in accounts}
        job = world.job([(a, t, "retweet") for a in accounts for t in tweets])
        done = await world.run(job)
        assert done.returncode == 0, done.stderr.decode()
        damage(world.ledger, how)
        again = await world.run(job)
        assert again.returncode == 0, again.stderr.decode()
        for account in accounts:
            lines = by_tweet(world, account)
            owned = {t for t, line in lines.items() if line["preexisting"] is True}
            assert owned == before[account]
            assert all(line["preexisting"] is not None for line in lines.values())
        await roll_back(world)
        assert {a: world.retweets(a) for a in accounts} == before


class TestDurability:
    async def test_every_ledger_line_is_synced_within_a_second_during_a_long_wait(
        self, make_world: MakeWorld, tmp_path: Path
    ) -> None:
        """A power cut loses what was written and not fsynced; with every write and fsync of the
        ledger traced, each line written before a long rate-limit wait is fsynced within about
        a second of its write, not at the end of the wait."""
        world = await make_world(limit=2, window=3.0)
        job = world.job([("acct001", str(100 + n), "retweet") for n in range(3)])
        trace = tmp_path / "trace.log"
        tracer = (
            "import os, sys, time, runpy\n"
            f"log = open({str(trace)!r}, 'a', buffering=1)\n"
            f"name = {world.ledger.name!r}\n"
            "def is_ledger(fd):\n"
            "    try:\n"
            "        return os.readlink(f'/proc/self/fd/{fd}').endswith(name)\n"
            "    except OSError:\n"
            "        return False\n"
            "real_write, real_fsync = os.write, os.fsync\n"
            "def write(fd, data):\n"
            "    if is_ledger(fd): log.write(f'w {time.monotonic()}\\n')\n"
            "    return real_write(fd, data)\n"
            "def fsync(fd):\n"
            "    result = real_fsync(fd)\n"
            "    if is_ledger(fd): log.write(f's {time.monotonic()}\\n')\n"
            "    return result\n"
            "os.write, os.fsync = write, fsync\n"
            "sys.argv = ['bulkrt', *sys.argv[1:]]\n"
            "runpy.run_module('bulkrt', run_name='__main__')\n"
        )
        args = world.run_args(job)
        done = await run_cli([sys.executable, "-c", tracer, *args[3:]])
        assert done.returncode == 0, done.stderr.decode()
        events = [line.split() for line in trace.read_text().splitlines()]
        writes = [float(t) for kind, t in events if kind == "w"]
        syncs = [float(t) for kind, t in events if kind == "s"]
        assert len(writes) == 3
        # the third line waited for the window: a sync at the end of that wait would be late
        assert max(writes) - min(writes) > 2.0
        for written in writes:
            assert any(written <= synced <= written + 1.3 for synced in syncs), (written, syncs)

    async def test_a_full_disk_stops_the_run_cleanly_with_exit_74_and_resume_finishes(
        self, make_world: MakeWorld
    ) -> None:
        """Writes beyond a file-size limit fail like a full disk: the run stops with exit 74 and
        one message naming the file, the cause and the resume command; no torn line stays in the
        ledger; the same command without the limit finishes every item, none taken for the
        owner's."""
        world = await make_world(limit=50)
        job = world.job([("acct001", str(100 + n), "retweet") for n in range(12)])
        args = world.run_args(job, "--concurrency", "1")

        def limited() -> subprocess.CompletedProcess[bytes]:
            def limit() -> None:
                resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))

            return subprocess.run(args, capture_output=True, preexec_fn=limit, check=False)

        full = await anyio.to_thread.run_sync(limited)
        assert full.returncode == 74, full.stderr.decode()
        err = full.stderr.decode()
        assert "cannot write" in err and "File too large" in err
        assert "resume with the same command" in err
        assert "Traceback" not in err
        for raw in world.ledger.read_bytes().splitlines():
            json.loads(raw)  # every line whole
        assert world.ledger.read_bytes().endswith(b"\n")
        again = await world.run(job, "--concurrency", "1")
        assert again.returncode == 0, again.stderr.decode()
        assert world.retweets("acct001") == {str(100 + n) for n in range(12)}
        origins = [line["preexisting"] for line in world.lines() if line["status"] == "ok"]
        # Never the owner's; the one retweet whose answer could not be written anywhere (its
        # journal entry met the full disk too) may be of undecidable origin.
        assert True not in origins and origins.count(None) <= 1


class TestPaths:
    async def test_a_second_run_through_a_symlink_or_a_hard_link_exits_2(
        self, make_world: MakeWorld
    ) -> None:
        """While one run holds the ledger, a second run naming it through a symlink or a hard
        link is refused (exit 2, locked) and sends nothing."""
        world = await make_world(limit=1, window=10.0)
        # 30 items at 1 per 10 s: the first run holds the lock for minutes, however slowly the
        # second runs start on a loaded machine; the SIGINT below ends it
        job = world.job([("acct001", str(100 + n), "retweet") for n in range(30)])
        symlink, hardlink = world.dir / "alias.jsonl", world.dir / "hard.jsonl"
        world.ledger.touch()
        symlink.symlink_to(world.ledger)
        os.link(world.ledger, hardlink)
        other = world.job([("acct002", "200", "retweet")], name="other.csv")
        async with fork_cli(world.run_args(job)) as process:
            await eventually(lambda: len(world.lines()) >= 1)
            for alias in (symlink, hardlink):
                second = await run_args(with_option(world.run_args(other), "--ledger", str(alias)))
                assert second.returncode == 2, second.stderr.decode()
                assert "locked" in second.stderr.decode()
            process.send_signal(signal.SIGINT)
            await process.wait()
        assert world.retweets("acct002") == set()

    async def test_a_ledger_that_is_an_input_file_or_a_job_given_twice_is_refused(
        self, make_world: MakeWorld
    ) -> None:
        """--ledger naming the accounts file or the job file, and one job file given under two
        spellings, exit 2 before anything is sent; the files are left as they were."""
        world = await make_world()
        job = world.job([("acct001", "100", "retweet")])
        accounts_before, job_before = world.accounts.read_bytes(), job.read_bytes()
        for target in (world.accounts, job):
            refused = await run_args(with_option(world.run_args(job), "--ledger", str(target)))
            assert refused.returncode == 2, refused.stderr.decode()
            assert ": that is the" in refused.stderr.decode()
        twice = world.run_args(job)
        twice.insert(5, str(job.parent / "." / job.name))
        again = await run_args(twice)
        assert again.returncode == 2, again.stderr.decode()
        assert "given more than once" in again.stderr.decode()
        assert (world.accounts.read_bytes(), job.read_bytes()) == (accounts_before, job_before)
        assert world.sandbox.state.requests == 0


class TestOrderAndIdentity:
    async def test_a_retweet_then_undo_ends_not_retweeted_whatever_failed_between(
        self, make_world: MakeWorld
    ) -> None:
        """The retweet of a Tweet fails (error) and the job's later undo of it succeeds; the
        resumed run does not send the retweet (superseded), the Tweet stays not retweeted and
        the run exits 0."""
        world = await make_world()
        world.sandbox.state.faults.script(
            ScriptedFault(FaultKind.E500, count=1, user_id=world.user_id("acct001"))
        )
        job = world.job([("acct001", "100", "retweet"), ("acct001", "100", "undo")])
        first = await world.run(job, "--max-attempts", "1")
        assert first.returncode == 1, first.stderr.decode()
        assert [line["status"] for line in world.lines()] == ["error", "ok"]
        again = await world.run(job)
        assert again.returncode == 0, again.stderr.decode()
        assert world.lines()[-1]["status"] == "superseded"
        assert "100" not in world.retweets("acct001")
        third = await world.run(job)
        assert third.returncode == 0 and len(world.lines()) == 3

    async def test_a_reused_id_for_another_row_exits_2_naming_both_rows(
        self, make_world: MakeWorld
    ) -> None:
        """A later campaign in the same ledger reusing ids 1..3 for other Tweets exits 2, names
        the id and both rows, and sends nothing."""
        world = await make_world()
        first = world.dir / "spring.jsonl"
        rows = [{"id": str(n), "account": "acct001", "tweet_id": str(100 + n), "action": "retweet"}
                for n in (1, 2, 3)]  # fmt: skip
        first.write_text("".join(json.dumps(row) + "\n" for row in rows))
        done = await world.run(first)
        assert done.returncode == 0, done.stderr.decode()
        sent = world.sandbox.state.requests
        second = world.dir / "autumn.jsonl"
        second.write_text(
            "".join(
                json.dumps(row | {"tweet_id": str(200 + n)}) + "\n" for n, row in enumerate(rows)
            )
        )
        reused = await world.run(second)
        assert reused.returncode == 2, reused.stderr.decode()
        err = reused.stderr.decode()
        assert "'1' is already finished" in err
        assert "campaign 'spring', account acct001, retweet of Tweet 101" in err
        assert "campaign 'autumn', account acct001, retweet of Tweet 200" in err
        assert world.sandbox.state.requests == sent


class TestDone:
    async def test_a_run_whose_items_all_ended_exits_despite_a_far_window_wait(
        self, make_world: MakeWorld
    ) -> None:
        """An account's last item waits 15 minutes for its window when its credentials are
        revoked and the refresh is refused: every item then has its line, and the run exits
        (1, items in error) at once instead of idling until the window opens."""
        world = await make_world(limit=3, window=900.0, latency_ms=400)
        account = json.loads(world.accounts.read_text())["accounts"]["acct002"]["oauth2"]
        job = world.job([("acct002", str(100 + n), "retweet") for n in range(4)])
        async with fork_cli(world.run_args(job)) as process:
            await eventually(lambda: "100" in world.retweets("acct002"))
            tokens = world.sandbox.state.auth.tokens
            for token in (account["access_token"], account["refresh_token"]):
                revoked = tokens.revoke({"token": token, "client_id": account["client_id"]}, None)
                assert revoked.status == 200
            with anyio.fail_after(30):
                code = await process.wait()
        assert code == 1
        assert [line["status"] for line in world.lines()] == ["ok", "error", "error", "error"]
