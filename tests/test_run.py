"""`bulkrt run` end to end: the real CLI in its own process (forked from the test's, see
`CliChild`; a fresh interpreter where a signal is the point) against the sandbox on a real
socket, with short windows. Assertions are on what an operator sees: exit codes, messages, the
ledger, and the sandbox's recorded state."""

from __future__ import annotations

import functools
import gc
import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import anyio
import pytest

from bulkrt.commands.sandbox import write_accounts_file
from bulkrt.ledger.writer import LedgerWriter
from bulkrt.sandbox import FaultKind, OffsetClock, Sandbox, SandboxConfig
from bulkrt.sandbox.config import Endpoint, HiddenLimit
from bulkrt.sandbox.faults import ScriptedFault

#: the `bulkrt run --redis` options of the tests: leases short enough that a killed run's
#: accounts come back within a few seconds
FLEET_OPTIONS = ("--lease-seconds", "2", "--read-timeout", "2", "--connect-timeout", "1")


@dataclass(frozen=True)
class RunMode:
    """How a test's `bulkrt run` works: ``embedded`` (one process, the default) or ``redis``
    (the multi-machine mode: the run publishes the job to a Redis of its own and works on it)."""

    name: str
    #: what `World.run_args` adds to every `bulkrt run`
    options: tuple[str, ...] = ()


EMBEDDED = RunMode("embedded")

#: the mark of a test whose body runs in both modes (the `run_mode` fixture of conftest.py)
both_modes = pytest.mark.usefixtures("run_mode")


@dataclass
class World:
    """A sandbox, the accounts file it wrote, and paths for a job and a ledger; `mode` says
    how `run_args` runs a job."""

    sandbox: Sandbox
    dir: Path
    mode: RunMode = EMBEDDED

    @property
    def accounts(self) -> Path:
        return self.dir / "accounts.json"

    @property
    def ledger(self) -> Path:
        return self.dir / "ledger.jsonl"

    def user_id(self, name: str) -> str:
        return next(u.user_id for u in self.sandbox.state.world.users if u.name == name)

    def retweets(self, name: str) -> set[str]:
        return set(self.sandbox.state.retweets[self.user_id(name)])

    def job(self, rows: list[tuple[str, str, str]], name: str = "campaign.csv") -> Path:
        path = self.dir / name
        lines = ["account,tweet_id,action"] + [",".join(row) for row in rows]
        path.write_text("\n".join(lines) + "\n")
        return path

    def lines(self) -> list[dict[str, Any]]:
        if not self.ledger.exists():
            return []
        return [json.loads(line) for line in self.ledger.read_text().splitlines()]

    def run_args(self, job: Path, *extra: str) -> list[str]:
        """`bulkrt run` against this sandbox, with short windows and short retry backoff."""
        options = {
            "--accounts": str(self.accounts),
            "--ledger": str(self.ledger),
            "--api-base": self.sandbox.url,
            "--limit": str(self.sandbox.config.limit),
            "--window": str(self.sandbox.config.window),
            "--backoff-initial": "0.1",
            "--backoff-max": "0.5",
        }
        flat = [part for pair in options.items() for part in pair]
        return [
            sys.executable, "-m", "bulkrt", "run", str(job), *flat, "--no-progress",
            *self.mode.options, *extra,
        ]  # fmt: skip

    async def run(self, job: Path, *extra: str) -> subprocess.CompletedProcess[bytes]:
        return await run_cli(self.run_args(job, *extra))


#: how a command line of the real CLI starts (`World.run_args`), as `run_cli` takes it
PYTHON_M_BULKRT = (sys.executable, "-m", "bulkrt")


async def run_cli(
    args: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    """`python -m bulkrt ...` (``args`` as `anyio.run_process` takes them) run to its end in a
    child forked from this process (`CliChild`): its exit code, stdout and stderr."""
    async with fork_cli(args, env=env, cwd=cwd) as child:
        code = await child.wait()
    return subprocess.CompletedProcess(list(args), code, child.stdout(), child.stderr())


class CliChild:
    """A `bulkrt` command line running in a child forked from the test process (the console
    entry point as `tests.test_mistakes.run_here` runs it: its own process, files, signals and
    exit code), stdout and stderr in files: what `anyio.open_process` gives, without an
    interpreter start-up (about 0.5 s of CPU each). The child closes every descriptor it
    inherited (the sandbox's sockets, other children's pipes), so a connection the sandbox closes
    is closed for its client. What only a fresh interpreter shows (signals during start-up, the
    import-time state, what runs as it shuts down: the child ends with ``os._exit``) is the
    business of the tests that still start one: `tests/test_startup.py`, the README's, and one
    per signal in `TestStopAndResume`.

    ``python -c SCRIPT ARG...`` runs the same way: SCRIPT is executed as ``__main__`` with
    ``sys.argv`` ``["-c", ARG...]`` (the tests' own processes of bulkrt's parts, each with its
    own connections and event loop, such as `tests.test_fleet_budget`'s acquirers)."""

    def __init__(
        self, args: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> None:
        from tests.test_mistakes import run_here  # test_mistakes imports this module

        script: str | None = None
        if tuple(args[:2]) == (sys.executable, "-c") and len(args) > 2:
            script = args[2]
        elif tuple(args[:3]) != PYTHON_M_BULKRT:
            raise ValueError(f"not a bulkrt command line: {args[:3]}")
        preload_commands()
        self._out = tempfile.TemporaryFile()  # noqa: SIM115  # closed by `close`
        self._err = tempfile.TemporaryFile()  # noqa: SIM115
        self.returncode: int | None = None
        self._kept: tuple[bytes, bytes] | None = None  # stdout and stderr, once closed
        self.pid = os.fork()
        if self.pid == 0:  # the child: it never returns from here
            gc.freeze()  # no object of the parent's is collected here (closing a reused fd)
            signal.set_wakeup_fd(-1)  # the parent's event loop's, if it set one
            keep = {self._out.fileno(), self._err.fileno()}
            for fd in map(int, os.listdir("/proc/self/fd")):
                if fd > 2 and fd not in keep:
                    with suppress(OSError):
                        os.close(fd)
            if env is not None:
                os.environ.clear()
                os.environ.update(env)
            out, err = self._out.fileno(), self._err.fileno()
            run_here(tuple(args[3:]), cwd or Path.cwd(), out, err, script=script)

    def poll(self) -> int | None:
        """The exit code once the child has exited (reaped then), else None."""
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid != 0:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    async def wait(self) -> int:
        """Wait for the child's exit (polling, so the event loop serves the sandbox meanwhile)."""
        pause = 0.001
        while (code := self.poll()) is None:
            await anyio.sleep(pause)
            pause = min(pause * 2, 0.02)
        return code

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def stdout(self) -> bytes:
        """What the child wrote on its stdout so far (all of it once closed)."""
        return self._kept[0] if self._kept else _read(self._out)

    def stderr(self) -> bytes:
        """What the child wrote on its stderr so far (all of it once closed)."""
        return self._kept[1] if self._kept else _read(self._err)

    def close(self) -> None:
        """Kill the child if it still runs, reap it, keep its output and drop its files."""
        if self.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            _, status = os.waitpid(self.pid, 0)  # killed: reaped at once
            self.returncode = os.waitstatus_to_exitcode(status)
        if self._kept is None:
            self._kept = (self.stdout(), self.stderr())
        self._out.close()
        self._err.close()


def _read(file: IO[bytes]) -> bytes:
    return os.pread(file.fileno(), os.fstat(file.fileno()).st_size, 0)


@functools.cache
def preload_commands() -> None:
    """Import every command's module before the first fork, so no child imports one again."""
    from bulkrt.cli import COMMANDS

    for listed in COMMANDS.values():
        importlib.import_module(listed.module)


@asynccontextmanager
async def fork_cli(
    args: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> AsyncIterator[CliChild]:
    """`CliChild` for the block, which ends (as `anyio.open_process`'s does) once the child
    has exited; a test that fails or times out kills it."""
    child = CliChild(args, env=env, cwd=cwd)
    try:
        yield child
        await child.wait()
    finally:
        child.close()


MakeWorld = Callable[..., Awaitable[World]]


async def eventually(condition: Callable[[], bool], seconds: float = 30) -> None:
    """Wait until ``condition`` holds (it watches another process), failing after ``seconds``."""
    with anyio.fail_after(seconds):
        while True:
            if condition():
                return
            await anyio.sleep(0.05)


def mode_of(request: pytest.FixtureRequest) -> RunMode:
    """The test's `run_mode` if it asks for one (`both_modes`), else the embedded mode."""
    if "run_mode" in request.fixturenames:
        mode = request.getfixturevalue("run_mode")
        assert isinstance(mode, RunMode)
        return mode
    return EMBEDDED


@pytest.fixture
async def make_world(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[MakeWorld]:
    """Start a sandbox (keyword arguments of `SandboxConfig`) with 5-per-2-s windows; its
    `World` runs jobs in the test's `run_mode`."""
    sandboxes: list[Sandbox] = []
    mode = mode_of(request)

    async def make(**config: Any) -> World:
        config.setdefault("users", 6)
        config.setdefault("limit", 5)
        config.setdefault("window", 2.0)
        sandbox = Sandbox(SandboxConfig(**config), clock=OffsetClock())
        await sandbox.start()
        sandboxes.append(sandbox)
        world = World(sandbox, tmp_path, mode)
        expires = sandbox.clock.now() + sandbox.config.token_ttl
        write_accounts_file(world.accounts, sandbox.state.world.accounts_file(expires_at=expires))
        return world

    yield make
    for sandbox in sandboxes:
        await sandbox.close()


def rows(
    accounts: list[str], per_account: int, action: str = "retweet", first: int = 100
) -> list[tuple[str, str, str]]:
    return [(a, str(first + n), action) for n in range(per_account) for a in accounts]


ACCOUNTS = [f"acct{n:03d}" for n in range(1, 7)]


class TestCampaign:
    @both_modes
    async def test_a_campaign_ends_ok_with_no_avoidable_429(self, make_world: MakeWorld) -> None:
        """Six accounts x 12 retweets at 5 per 2 s: exit 0, every item ok in the ledger, every
        retweet in the sandbox, and not one 429."""
        world = await make_world()
        done = await world.run(world.job(rows(ACCOUNTS, 12)))
        assert done.returncode == 0, done.stderr.decode()
        assert "72 ok, 0 rejected, 0 error" in done.stdout.decode()
        lines = world.lines()
        assert len(lines) == 72
        assert {line["status"] for line in lines} == {"ok"}
        assert all(line["retweeted"] is True and line["attempts"] == 1 for line in lines)
        assert list(lines[0]) == [
            "schema", "ts", "run", "key", "campaign", "account", "user_id", "tweet_id", "action",
            "status", "retweeted", "preexisting", "http", "error", "attempts", "sent",
        ]  # fmt: skip
        for account in ACCOUNTS:
            assert world.retweets(account) == {str(100 + n) for n in range(12)}
        assert "429" not in world.sandbox.state.stats()["by_status"]

    async def test_rejected_items_are_recorded_and_exit_1(self, make_world: MakeWorld) -> None:
        """A deleted and a protected Tweet end rejected with the API's error; the rest end ok;
        the exit code is 1 and the summary says so."""
        world = await make_world(
            deleted_tweets=frozenset({"900"}), protected_tweets=frozenset({"901"})
        )
        job = world.job(
            [
                ("acct001", "900", "retweet"),
                ("acct002", "901", "retweet"),
                ("acct003", "20", "retweet"),
            ]
        )
        done = await world.run(job)
        assert done.returncode == 1
        assert "1 ok, 2 rejected, 0 error" in done.stdout.decode()
        by_tweet = {line["tweet_id"]: line for line in world.lines()}
        assert by_tweet["900"]["status"] == "rejected"
        assert by_tweet["900"]["error"]["type"] == "resource-not-found"
        assert by_tweet["901"]["status"] == "rejected"
        assert by_tweet["901"]["http"] == 403
        assert by_tweet["20"]["status"] == "ok"

    async def test_already_retweeted_is_ok_and_preexisting(self, make_world: MakeWorld) -> None:
        """A retweet the account had already made ends ok, retweeted, preexisting: true."""
        world = await make_world()
        world.sandbox.state.retweets[world.user_id("acct002")].add("55")
        done = await world.run(
            world.job([("acct002", "55", "retweet"), ("acct002", "56", "retweet")])
        )
        assert done.returncode == 0
        by_tweet = {line["tweet_id"]: line for line in world.lines()}
        assert (by_tweet["55"]["status"], by_tweet["55"]["preexisting"]) == ("ok", True)
        assert (by_tweet["56"]["status"], by_tweet["56"]["preexisting"]) == ("ok", False)

    async def test_a_retweet_then_undo_of_one_tweet_keep_their_order(
        self, make_world: MakeWorld
    ) -> None:
        """Items of one account go in file order: retweet, undo, retweet ends retweeted."""
        world = await make_world()
        job = world.job(
            [("acct001", "7", "retweet"), ("acct001", "7", "undo"), ("acct001", "7", "retweet")]
        )
        done = await world.run(job)
        assert done.returncode == 0, done.stderr.decode()
        assert [line["retweeted"] for line in world.lines()] == [True, False, True]
        assert world.retweets("acct001") == {"7"}


class TestWhatTheOperatorSees:
    async def test_the_progress_display_ends_with_the_final_counts(
        self, make_world: MakeWorld
    ) -> None:
        """With --progress the live display's last frame shows every item done, the counts and
        the expected finish from the limit model."""
        world = await make_world()
        done = await world.run(world.job(rows(ACCOUNTS, 2)), "--progress")
        assert done.returncode == 0
        err = done.stderr.decode()
        assert "12/12 items" in err and "ok 12" in err and "rejected 0" in err
        assert "(limit model)" in err and "accounts: finished 6" in err

    async def test_without_a_terminal_progress_is_logged(self, make_world: MakeWorld) -> None:
        """Without a terminal, a run_progress log line reports done and total every few seconds."""
        world = await make_world(limit=1, window=3.0)
        done = await world.run(world.job(rows(["acct001"], 3)))
        assert done.returncode == 0
        assert "run_progress" in done.stderr.decode()
        assert "total=3" in done.stderr.decode()


class TestFaultsAndAuth:
    @both_modes
    async def test_transient_faults_are_retried_to_ok(self, make_world: MakeWorld) -> None:
        """Under 5xx (JSON, HTML, empty) and connection resets, every item still ends ok, within
        the attempt bound, and the sandbox holds exactly the job's retweets."""
        faults = {
            FaultKind.E500: 0.08, FaultKind.E503: 0.08, FaultKind.E502_HTML: 0.04,
            FaultKind.E504_EMPTY: 0.04, FaultKind.RESET: 0.03, FaultKind.RESET_AFTER: 0.03,
        }  # fmt: skip
        world = await make_world(fault_rates=faults, seed=1)
        done = await world.run(world.job(rows(ACCOUNTS, 8)), "--max-attempts", "10")
        assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
        lines = world.lines()
        assert len(lines) == 48 and {line["status"] for line in lines} == {"ok"}
        assert max(line["attempts"] for line in lines) > 1
        assert max(line["attempts"] for line in lines) <= 10
        for account in ACCOUNTS:
            assert world.retweets(account) == {str(100 + n) for n in range(8)}
        stats = world.sandbox.state.stats()
        assert stats["by_fault"]
        assert "429" not in stats["by_status"]

    async def test_an_expiring_token_is_refreshed_once_and_persisted(
        self, make_world: MakeWorld
    ) -> None:
        """OAuth 2.0 tokens near expiry are refreshed once per account; the rotated refresh token
        is in the accounts file and the old one no longer works."""
        world = await make_world(token_ttl=30)
        before = json.loads(world.accounts.read_text())["accounts"]
        done = await world.run(world.job(rows(ACCOUNTS, 3)))
        assert done.returncode == 0, done.stderr.decode()
        oauth2 = [name for name in ACCOUNTS if "oauth2" in before[name]]
        assert world.sandbox.state.stats()["refreshes"] == len(oauth2) == 3
        after = json.loads(world.accounts.read_text())["accounts"]
        for name in oauth2:
            assert after[name]["oauth2"]["refresh_token"] != before[name]["oauth2"]["refresh_token"]
            reuse = world.sandbox.state.auth.tokens.token(
                {
                    "grant_type": "refresh_token",
                    "client_id": before[name]["oauth2"]["client_id"],
                    "refresh_token": before[name]["oauth2"]["refresh_token"],
                },
                None,
                world.sandbox.clock.now(),
            )
            assert reuse.status == 400

    @both_modes
    async def test_refused_credentials_pause_only_that_account(self, make_world: MakeWorld) -> None:
        """An account whose OAuth 1.0a secret is wrong ends in error, named in the summary; the
        other accounts finish ok; exit 1."""
        world = await make_world()
        document = json.loads(world.accounts.read_text())
        document["accounts"]["acct001"]["oauth1"]["access_token_secret"] = "wrong" * 9
        world.accounts.write_text(json.dumps(document))
        done = await world.run(world.job(rows(["acct001", "acct002", "acct003"], 4)))
        assert done.returncode == 1
        out = done.stdout.decode()
        assert "account acct001" in out and "OAuth 1.0a" in out
        by_account: dict[str, set[str]] = {}
        for line in world.lines():
            by_account.setdefault(line["account"], set()).add(line["status"])
        assert by_account == {"acct001": {"error"}, "acct002": {"ok"}, "acct003": {"ok"}}
        unauthorized = world.sandbox.state.stats()["by_status"]["401"]
        # slow start: the account's first request was refused, and nothing more was sent
        assert unauthorized == 1

    async def test_a_hidden_cap_parks_only_its_account(self, make_world: MakeWorld) -> None:
        """A cap no header shows (3 per 3 h) stops acct001's 4th retweet with a 429 while its
        window has room: acct001 is parked, the others finish, and after the cap's period acct001
        finishes too, with a handful of 429s in all."""
        cap = HiddenLimit(3, 10_800, frozenset({Endpoint.RETWEET}))
        world = await make_world(hidden_caps=(cap,), timestamp_skew=10**6)
        job = world.job(rows(["acct001"], 6) + rows(["acct003", "acct005"], 3, first=300))
        async with fork_cli(world.run_args(job)) as process:
            await eventually(lambda: "429" in world.sandbox.state.stats()["by_status"])
            # acct003 and acct005 (6 items) and acct001's first three
            await eventually(lambda: len(world.lines()) >= 9)
            assert isinstance(world.sandbox.clock, OffsetClock)
            world.sandbox.clock.advance(10_800)
            with anyio.fail_after(30):
                await process.wait()
        assert process.returncode == 0
        assert world.retweets("acct001") == {str(100 + n) for n in range(6)}
        assert world.sandbox.state.stats()["by_status"]["429"] <= 4


class TestStopAndResume:
    @both_modes
    async def test_sigint_stops_cleanly_and_the_same_command_resumes(
        self, make_world: MakeWorld
    ) -> None:
        """SIGINT mid-run exits 130 with the resume command, every ledger line whole; running the
        same command again finishes with every item ok and the sandbox in the job's state."""
        world = await make_world(limit=2, window=1.0)  # four windows left after the stop
        job = world.job(rows(["acct001", "acct002", "acct003", "acct004"], 10))
        args = world.run_args(job)
        async with await anyio.open_process(args) as process:
            await eventually(lambda: len(world.lines()) >= 8)
            process.send_signal(signal.SIGINT)
            with anyio.fail_after(30):
                await process.wait()
            assert process.stdout is not None
            out = (await process.stdout.receive()).decode()
        assert process.returncode == 130
        assert "To resume, run the same command again" in out
        stopped_at = len(world.lines())
        assert 8 <= stopped_at < 40
        again = await run_cli(args)
        assert again.returncode == 0, again.stderr.decode()
        assert f"{stopped_at} already finished" in again.stdout.decode()
        lines = world.lines()
        assert len(lines) == 40 and {line["status"] for line in lines} == {"ok"}
        assert len({line["key"] for line in lines}) == 40
        for account in ("acct001", "acct002", "acct003", "acct004"):
            assert world.retweets(account) == {str(100 + n) for n in range(10)}
        posts = world.sandbox.state.stats()["requests"]
        assert posts <= 40 + 16  # at most the requests in flight at the stop were repeated

    async def test_sigint_during_the_first_feed_stops_cleanly(self, make_world: MakeWorld) -> None:
        """A SIGINT that comes while the dispatcher feeds its first items (a resume skipping many
        finished ones takes a while there, before any await) is a clean stop: exit 130 with the
        resume command, no traceback (it met the start-up's handler, whose exit became a
        traceback through the task groups and exit 1). The signal is sent from inside the first
        feed, so it arrives there in every run; the same command then finishes the job."""
        world = await make_world()
        job = world.job(rows(["acct001", "acct002"], 3))
        args = world.run_args(job)
        script = (
            "import os, signal, sys\n"
            "from bulkrt.shell.dispatcher import Dispatcher\n"
            "feed = Dispatcher._feed\n"
            "def first_feed(self):\n"
            "    Dispatcher._feed = feed\n"
            "    os.kill(os.getpid(), signal.SIGINT)\n"
            "    feed(self)\n"
            "Dispatcher._feed = first_feed\n"
            f"sys.argv = ['bulkrt', *{args[3:]!r}]\n"
            "from bulkrt.launch import main\n"
            "main()\n"
        )
        done = await anyio.run_process([sys.executable, "-c", script], check=False)
        err = done.stderr.decode()
        assert done.returncode == 130, err
        assert "Traceback" not in err
        assert "To resume, run the same command again" in done.stdout.decode()
        again = await run_cli(args)
        assert again.returncode == 0, again.stderr.decode()
        lines = world.lines()
        assert len(lines) == 6 and len({line["key"] for line in lines}) == 6
        assert world.retweets("acct001") == {str(100 + n) for n in range(3)}

    @both_modes
    async def test_a_retweet_sent_just_before_a_crash_is_not_taken_for_preexisting(
        self, make_world: MakeWorld
    ) -> None:
        """A retweet the API made while the run was killed (no ledger line) comes back "already
        retweeted" on resume: its attempt may have been applied, so its origin is undecidable
        (preexisting: null), never the account's; a retweet the account had before is
        preexisting: true, and the rollback undoes (and lists) exactly the first."""
        world = await make_world(stall_seconds=60)
        world.sandbox.state.retweets[world.user_id("acct001")].add("501")
        world.sandbox.state.faults.script(
            ScriptedFault(FaultKind.STALL, user_id=world.user_id("acct001"))
        )
        job = world.job([("acct001", "500", "retweet"), ("acct001", "501", "retweet")])
        async with await anyio.open_process(world.run_args(job)) as process:
            await eventually(lambda: "500" in world.retweets("acct001"))
            process.kill()
            await process.wait()
        assert "500" not in {line["tweet_id"] for line in world.lines()}  # killed before its answer
        again = await world.run(job)
        assert again.returncode == 0, again.stderr.decode()
        by_tweet = {line["tweet_id"]: line for line in world.lines()}
        assert (by_tweet["500"]["status"], by_tweet["500"]["preexisting"]) == ("ok", None)
        assert (by_tweet["501"]["status"], by_tweet["501"]["preexisting"]) == ("ok", True)
        undo = world.dir / "undo.csv"
        rolled = await run_cli(
            [*PYTHON_M_BULKRT, "rollback", str(world.ledger), "--out", str(undo)]
        )
        assert rolled.returncode == 0
        assert undo.read_text().splitlines()[1:] == ["campaign-rollback,acct001,500,undo"]

    @both_modes
    async def test_sigterm_exits_143(self, make_world: MakeWorld) -> None:
        """SIGTERM stops a run the same clean way, with exit code 143."""
        world = await make_world(limit=1)
        job = world.job(rows(["acct001"], 5))
        async with await anyio.open_process(world.run_args(job)) as process:
            await eventually(lambda: len(world.lines()) >= 1)
            process.send_signal(signal.SIGTERM)
            with anyio.fail_after(30):
                await process.wait()
        assert process.returncode == 143
        assert 1 <= len(world.lines()) < 5

    async def test_a_torn_last_line_is_skipped_and_its_item_sent_again(
        self, make_world: MakeWorld
    ) -> None:
        """A ledger whose last line a crash tore resumes: the torn line is skipped with a warning,
        its item is sent again, and every item ends ok."""
        world = await make_world()
        first = await world.run(world.job(rows(["acct001"], 2)))
        assert first.returncode == 0
        whole = world.ledger.read_text().splitlines()
        world.ledger.write_text(whole[0] + "\n" + whole[1][:40])  # the crash cut line 2
        again = await world.run(world.job(rows(["acct001"], 3)))
        assert again.returncode == 0, again.stderr.decode()
        # the resume scan (before the lock) skips the torn line; the writer then ends it before
        # appending
        assert "ledger_torn_line_skipped" in again.stderr.decode()
        assert "ledger_torn_line_closed" in again.stderr.decode()
        assert "1 already finished before it" in again.stdout.decode()
        raw = world.ledger.read_text().splitlines()
        assert raw[1] == whole[1][:40]  # the torn line stays, closed, and is never read again
        latest = {json.loads(line)["tweet_id"]: json.loads(line)["status"] for line in raw[2:]}
        assert latest == {"101": "ok", "102": "ok"}
        assert world.retweets("acct001") == {"100", "101", "102"}

    async def test_a_second_run_on_a_locked_ledger_exits_2(self, make_world: MakeWorld) -> None:
        """While another process holds the ledger, run exits 2 and sends nothing."""
        world = await make_world()
        with LedgerWriter(world.ledger):
            done = await world.run(world.job(rows(ACCOUNTS, 1)))
        assert done.returncode == 2
        assert "locked" in done.stderr.decode()
        assert world.sandbox.state.stats()["requests"] == 0

    async def test_dry_run_plans_and_sends_nothing(self, make_world: MakeWorld) -> None:
        """--dry-run prints counts, the expected duration and the cost; no request, no ledger."""
        world = await make_world()
        done = await world.run(world.job(rows(ACCOUNTS, 12)), "--dry-run", "--tier", "payg")
        assert done.returncode == 0
        out = done.stdout.decode()
        assert "would send 72 requests (72 retweets, 0 undos)" in out
        assert "expected duration" in out and "0m04s" in out
        assert "$1.080" in out
        assert not world.ledger.exists()
        assert world.sandbox.state.stats()["requests"] == 0

    async def test_bad_input_exits_2_and_sends_nothing(self, make_world: MakeWorld) -> None:
        """A job row with an unknown account is reported as FILE:LINE: field and nothing is sent."""
        world = await make_world()
        job = world.job([("acct001", "1", "retweet"), ("nobody", "2", "retweet")])
        done = await world.run(job)
        assert done.returncode == 2
        assert f"{job}:3: account:" in done.stderr.decode()
        assert world.sandbox.state.stats()["requests"] == 0
        assert not world.ledger.exists()
