"""`bulkrt rollback`: which pairs a ledger's campaign(s) leave to undo (table-driven, on written
ledgers), the undo job file, and the campaign -> rollback round trip against the sandbox through
the real CLI: every account's retweets end exactly as before the campaign."""

from __future__ import annotations

import csv
import gzip
import io
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from bulkrt.cli import main
from bulkrt.commands.sandbox import write_accounts_file
from bulkrt.core.attribution import Origin
from bulkrt.core.items import Action, ErrorDetail, Status
from bulkrt.jobs.rows import Row
from bulkrt.ledger.record import LedgerRecord
from bulkrt.ledger.undo import RollbackError, select_undo, write_undo_job
from bulkrt.sandbox import OffsetClock, Sandbox, SandboxConfig
from tests.test_run import World, both_modes, eventually, fork_cli, mode_of, run_cli

OK = LedgerRecord(
    ts="2026-11-26T01:00:00.000Z", run="r1", key="k", campaign="spring", account="acme",
    user_id="1001", tweet_id="20", action=Action.RETWEET, status=Status.OK, retweeted=True,
    preexisting=False, http=200, error=None, attempts=1,
)  # fmt: skip
PRE = replace(OK, preexisting=True)
UNDONE = replace(OK, action=Action.UNDO, retweeted=False)
ROLLED = replace(UNDONE, campaign="spring-rollback")
FAILED = replace(OK, status=Status.ERROR, retweeted=None, http=None, error=ErrorDetail("network"))
REFUSED = replace(OK, status=Status.REJECTED, retweeted=None, http=404,
                  error=ErrorDetail("resource-not-found"))  # fmt: skip


@dataclass(frozen=True)
class Case:
    """A ledger, the selection, and what the rollback should choose."""

    name: str
    ledger: list[LedgerRecord]
    undo: list[str]
    kept: int = 0
    undone: int = 0
    refused: int = 0
    unknown: int = 0
    campaigns: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ()
    include_preexisting: bool = False
    #: the journal's verdicts, per (campaign, account, Tweet)
    origins: dict[tuple[str, str, str], Origin] = field(default_factory=dict)
    #: the undo rows no ledger line names (the journal alone recorded them)
    journal_alone: tuple[str, ...] = ()


PAIR = ("spring", "acme", "20")
CASES = [
    Case("the campaign's retweet is undone", [OK], ["acme:20"]),
    Case("a pre-existing retweet is kept", [PRE], [], kept=1),
    Case("--include-preexisting undoes it too", [PRE], ["acme:20"], include_preexisting=True),
    Case("a retweet the campaign undid itself", [OK, UNDONE], [], undone=1),
    Case("a retweet its rollback already undid", [OK, ROLLED], [], undone=1),
    Case("a rollback undo that failed is chosen again",
         [OK, replace(ROLLED, status=Status.ERROR, retweeted=None)], ["acme:20"]),
    Case("a rejected retweet never existed", [REFUSED], [], refused=1),
    Case("an item that only failed has an unknown state", [FAILED], [], unknown=1),
    Case("an item that failed and then succeeded on resume", [FAILED, OK], ["acme:20"]),
    Case("a resumed retweet that heard 'already retweeted' after its own first ok line",
         [OK, PRE], ["acme:20"]),
    Case("retweet, undo, retweet again ends retweeted",
         [OK, UNDONE, replace(OK, key="k2")], ["acme:20"]),
    Case("only the chosen campaign", [OK, replace(OK, campaign="autumn", tweet_id="21")],
         ["acme:20"], campaigns=("spring",)),
    Case("only the chosen account", [OK, replace(OK, account="beta")], ["acme:20"],
         accounts=("acme",)),
    Case("an earlier campaign's retweet is pre-existing for a later one",
         [replace(OK, campaign="autumn"), PRE], [], kept=1, campaigns=("spring",)),
    Case("but rolling both back undoes it", [replace(OK, campaign="autumn"), PRE], ["acme:20"]),
    Case("every pair is counted once, whatever its lines",
         [OK, PRE, replace(OK, tweet_id="21"), replace(REFUSED, tweet_id="22"),
          replace(FAILED, tweet_id="23"), replace(OK, tweet_id="24", preexisting=True),
          replace(UNDONE, tweet_id="21")],
         ["acme:20"], kept=1, undone=1, refused=1, unknown=1),
    Case("an unsettled journal entry (a kill dropped its settling event) leaves the ledger's "
         "owner line standing", [PRE], [], kept=1, origins={PAIR: Origin.UNDECIDED}),
    Case("a journal begun after the first retweet (the old one deleted) cannot turn it into "
         "the owner's", [OK, replace(PRE, key="k2")], ["acme:20"], origins={PAIR: Origin.OWNER}),
    Case("the journal's proof that the campaign made it wins over a later 'already retweeted'",
         [PRE], ["acme:20"], origins={PAIR: Origin.CAMPAIGN}),
    Case("an attempt that may have applied, then a refusal: undecidable, undone",
         [REFUSED], ["acme:20"], origins={PAIR: Origin.UNDECIDED}),
    Case("a campaign whose every ledger line is gone is undone from the journal's 'made'",
         [], ["acme:20"], origins={PAIR: Origin.CAMPAIGN}, journal_alone=("acme:20",)),
    Case("a journal-only campaign is found by name beside the ledger's campaigns",
         [replace(OK, campaign="autumn", tweet_id="21")], ["acme:20"], campaigns=("spring",),
         origins={PAIR: Origin.CAMPAIGN}, journal_alone=("acme:20",)),
    Case("the journal alone never undoes an owner's retweet",
         [], [], kept=1, origins={PAIR: Origin.OWNER}),
    Case("a journal-only campaign's retweet its rollback already undid",
         [ROLLED], [], undone=1, origins={PAIR: Origin.CAMPAIGN}),
    Case("the ledger's first ok retweet by an earlier campaign stands: undone once, as the "
         "ledger's", [replace(OK, campaign="autumn")], ["acme:20"],
         origins={PAIR: Origin.CAMPAIGN}),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_select_undo(case: Case) -> None:
    """The undo rows and the counts of pairs left alone, by reason, are as the case says."""
    plan = select_undo(
        case.ledger,
        source="ledger.jsonl",
        campaigns=case.campaigns,
        accounts=case.accounts,
        include_preexisting=case.include_preexisting,
        origins=case.origins,
    )
    assert [f"{row.account}:{row.tweet_id}" for row in plan.undo] == case.undo
    assert all(row.campaign.endswith("-rollback") for row in plan.undo)
    counts = (plan.kept_preexisting, plan.already_undone, plan.never_retweeted, plan.unknown)
    assert counts == (case.kept, case.undone, case.refused, case.unknown)
    assert tuple(f"{row.account}:{row.tweet_id}" for row in plan.from_journal) == case.journal_alone


REFUSALS = [
    ("rolling back a rollback", [OK, ROLLED], {"campaigns": ("spring-rollback",)},
     "spring-rollback: a rollback campaign cannot be rolled back"),
    ("a ledger of only a rollback", [ROLLED], {},
     "holds only rollback campaign(s) (spring-rollback); a rollback cannot be rolled back"),
    ("an empty ledger", [], {}, "holds no campaign to roll back"),
    ("a campaign the ledger lacks", [OK], {"campaigns": ("autumn",)},
     "no lines of campaign(s) autumn in ledger.jsonl"),
    ("an account the campaign lacks", [OK], {"accounts": ("acme", "zed")},
     "no lines of account(s) zed in campaign(s) spring"),
]  # fmt: skip


@pytest.mark.parametrize(("ledger", "selection", "message"), [r[1:] for r in REFUSALS],
                         ids=[r[0] for r in REFUSALS])  # fmt: skip
def test_refused_selections(
    ledger: list[LedgerRecord], selection: dict[str, tuple[str, ...]], message: str
) -> None:
    """A selection that cannot be rolled back is refused with a message saying why."""
    with pytest.raises(RollbackError) as raised:
        select_undo(
            ledger,
            source="ledger.jsonl",
            campaigns=selection.get("campaigns", ()),
            accounts=selection.get("accounts", ()),
        )
    assert message in str(raised.value)


def test_the_summary_says_what_was_left_alone_and_why() -> None:
    """The summary names the undo count, the file, and each reason a pair was left alone."""
    plan = select_undo(
        [OK, replace(PRE, tweet_id="21"), replace(REFUSED, tweet_id="22"),
         replace(FAILED, tweet_id="23")],
        source="l",
    )  # fmt: skip
    assert plan.summary("undo.csv", include_preexisting=False) == [
        "1 undo item(s) for campaign(s) spring -> undo.csv",
        "  left alone: 1 retweeted before the campaign (--include-preexisting: undo)",
        "  left alone: 1 never retweeted (the API rejected them): nothing to undo",
        "  left alone: 1 state unknown: their latest items ended error; run the campaign's job "
        "again with the same --ledger (it retries only those), then roll back again",
    ]


def test_an_error_a_later_run_turned_into_a_rejection_is_not_unknown() -> None:
    """A pair whose error was followed by a rejection is final (resume skips it): the summary
    counts it as never retweeted, not as unknown advice that would send nothing."""
    plan = select_undo([FAILED, replace(REFUSED, tweet_id=FAILED.tweet_id)], source="l")
    assert (plan.never_retweeted, plan.unknown) == (1, 0)


ROWS = [Row("s-rollback", "acme", "20", Action.UNDO), Row("s-rollback", "a,b", "21", Action.UNDO)]


@pytest.mark.parametrize("name", ["undo.csv", "undo.jsonl", "undo.csv.gz", "undo.jsonl.gz"])
def test_the_undo_job_is_written_by_its_extension(tmp_path: Path, name: str) -> None:
    """CSV or JSONL by the name, gzip for .gz, one undo row per pair, names quoted as needed."""
    path = tmp_path / name
    assert write_undo_job(path, ROWS) == 2
    data = path.read_bytes()
    text = (gzip.decompress(data) if name.endswith(".gz") else data).decode()
    if ".csv" in name:
        got = list(csv.DictReader(io.StringIO(text)))
    else:
        got = [json.loads(line) for line in text.splitlines()]
    assert got == [
        {"campaign": "s-rollback", "account": "acme", "tweet_id": "20", "action": "undo"},
        {"campaign": "s-rollback", "account": "a,b", "tweet_id": "21", "action": "undo"},
    ]
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left behind


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("undo.txt", "name the job .csv or .jsonl"),
        ("ledger.jsonl", "that is the ledger's own file"),
        ("sub/../ledger.jsonl", "that is the ledger's own file"),
    ],
)
def test_the_undo_job_never_replaces_the_wrong_file(
    tmp_path: Path, name: str, message: str
) -> None:
    """An undo job named like no job file, or naming the ledger itself, is refused."""
    ledger = tmp_path / "ledger.jsonl"
    (tmp_path / "sub").mkdir()
    ledger.write_text("kept\n")
    with pytest.raises(RollbackError, match=message):
        write_undo_job(tmp_path / name, ROWS, ledger=ledger)
    assert ledger.read_text() == "kept\n"


# --- against the sandbox, through the real CLI ----------------------------------------------

ACCOUNTS = ["acct001", "acct002", "acct003", "acct004"]
TWEETS = [str(100 + n) for n in range(5)]


@pytest.fixture
async def make_world(
    tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Callable[..., Awaitable[World]]]:
    """Start a sandbox of four accounts (``limit`` requests per ``window`` s) in which acct002
    and acct003 had retweeted some of the campaign's Tweets (and acct003 one other) before it;
    its `World` runs jobs in the test's `run_mode`."""
    mode = mode_of(request)
    async with AsyncExitStack() as stack:

        async def make(limit: int = 10, window: float = 1.0) -> World:
            config = SandboxConfig(users=4, limit=limit, window=window)
            sandbox = await stack.enter_async_context(Sandbox(config, clock=OffsetClock()))
            made = World(sandbox, tmp_path, mode)
            expires = sandbox.clock.now() + config.token_ttl
            accounts = sandbox.state.world.accounts_file(expires_at=expires)
            write_accounts_file(made.accounts, accounts)
            sandbox.state.retweets[made.user_id("acct002")].add("101")
            sandbox.state.retweets[made.user_id("acct003")].update({"103", "104", "999"})
            return made

        yield make


@pytest.fixture
async def world(make_world: Callable[..., Awaitable[World]]) -> World:
    """The sandbox of `make_world` with room for a whole campaign in one window."""
    return await make_world()


def state(world: World) -> dict[str, set[str]]:
    return {name: world.retweets(name) for name in ACCOUNTS}


async def rollback(world: World, *extra: str) -> subprocess.CompletedProcess[bytes]:
    args = [sys.executable, "-m", "bulkrt", "rollback", str(world.ledger), *extra]
    return await run_cli(args)


async def campaign(world: World) -> dict[str, set[str]]:
    """Build the campaign with `bulkrt expand` (every account retweets every Tweet) and run it;
    return the state before it."""
    before = state(world)
    job = world.dir / "campaign.csv"
    expand = ["expand", "--accounts", ",".join(ACCOUNTS), "--tweets", ",".join(TWEETS),
              "--campaign", "campaign", "--out", str(job),
              "--accounts-file", str(world.accounts)]  # fmt: skip
    expanded = CliRunner().invoke(main, expand)
    assert expanded.exit_code == 0, expanded.output
    done = await world.run(job)
    assert done.returncode == 0, done.stderr.decode()
    assert state(world) == {a: before[a] | set(TWEETS) for a in ACCOUNTS}
    return before


class TestRoundTrip:
    @both_modes
    async def test_a_campaign_and_its_rollback_leave_every_account_as_before(
        self, world: World
    ) -> None:
        """The rollback undoes the campaign's 17 retweets, keeps the 3 that were there before,
        and after running it every account's retweets are exactly as before the campaign."""
        before = await campaign(world)
        undo = world.dir / "undo.jsonl"
        made = await rollback(world, "--out", str(undo))
        assert made.returncode == 0, made.stderr.decode()
        out = made.stdout.decode()
        assert f"17 undo item(s) for campaign(s) campaign -> {undo}" in out
        assert "left alone: 3 retweeted before the campaign" in out
        done = await world.run(undo)
        assert done.returncode == 0, done.stderr.decode()
        assert state(world) == before
        undos = [line for line in world.lines() if line["campaign"] == "campaign-rollback"]
        assert len(undos) == 17 and {line["status"] for line in undos} == {"ok"}
        again = await rollback(world, "--out", str(world.dir / "again.csv"))
        assert "0 undo item(s)" in again.stdout.decode()
        assert "left alone: 17 no longer retweeted" in again.stdout.decode()

    async def test_include_preexisting_undoes_the_earlier_retweets_too(self, world: World) -> None:
        """With --include-preexisting the campaign's Tweets go from every account, including
        those retweeted before it; a retweet outside the campaign stays."""
        await campaign(world)
        undo = world.dir / "undo.csv.gz"
        made = await rollback(world, "--out", str(undo), "--include-preexisting")
        assert "20 undo item(s)" in made.stdout.decode()
        done = await world.run(undo)
        assert done.returncode == 0, done.stderr.decode()
        assert state(world) == {a: set() for a in ACCOUNTS} | {"acct003": {"999"}}

    async def test_one_account_can_be_rolled_back_alone(self, world: World) -> None:
        """--account selects one account's pairs: it returns to its state before the campaign
        and the other accounts keep the campaign's retweets."""
        before = await campaign(world)
        after = state(world)
        undo = world.dir / "undo.csv"
        made = await rollback(world, "--out", str(undo), "--account", "acct003")
        assert "3 undo item(s)" in made.stdout.decode()
        done = await world.run(undo)
        assert done.returncode == 0, done.stderr.decode()
        assert state(world) == after | {"acct003": before["acct003"]}

    async def test_a_rollback_killed_halfway_and_run_again_ends_the_same(
        self, make_world: Callable[..., Awaitable[World]]
    ) -> None:
        """SIGKILL of the undo run partway leaves some undos recorded; the same command again
        finishes the rest, and every account ends exactly as before the campaign."""
        world = await make_world(limit=2, window=1.0)
        before = await campaign(world)
        undo = world.dir / "undo.csv"
        await rollback(world, "--out", str(undo))

        def undone() -> int:
            return sum(line["campaign"] == "campaign-rollback" for line in world.lines())

        async with fork_cli(world.run_args(undo)) as process:
            await eventually(lambda: undone() >= 4)
            process.send_signal(signal.SIGKILL)
            await process.wait()
        killed_at = undone()
        assert 4 <= killed_at < 17
        assert state(world) != before
        remaining = await rollback(world, "--out", str(world.dir / "rest.csv"))
        assert f"{17 - killed_at} undo item(s)" in remaining.stdout.decode()
        again = await world.run(undo)
        assert again.returncode == 0, again.stderr.decode()
        assert f"{killed_at} already finished" in again.stdout.decode()
        assert state(world) == before

    async def test_a_campaign_only_the_journal_records_is_rolled_back(self, world: World) -> None:
        """A ledger restored from a backup made before campaign `newer` (its journal kept): the
        rollback of every campaign, and `--campaign newer`, undo newer's retweets too, list them
        as from the journal alone, and the accounts end as before both campaigns."""
        before = state(world)
        older = world.job([("acct001", "200", "retweet")], name="older.csv")
        newer = world.job([("acct001", "201", "retweet"), ("acct002", "201", "retweet")],
                          name="newer.csv")  # fmt: skip
        assert (await world.run(older)).returncode == 0
        backup = world.ledger.read_bytes()
        assert (await world.run(newer)).returncode == 0
        assert world.retweets("acct002") == before["acct002"] | {"201"}
        world.ledger.write_bytes(backup)
        named = await rollback(world, "--campaign", "newer", "--out", str(world.dir / "n.csv"))
        assert named.returncode == 0, named.stderr.decode()
        assert "2 undo item(s) for campaign(s) newer" in named.stdout.decode()
        undo = world.dir / "undo.csv"
        made = await rollback(world, "--out", str(undo))
        assert made.returncode == 0, made.stderr.decode()
        out = made.stdout.decode()
        assert "3 undo item(s) for campaign(s) newer, older" in out
        assert "campaign(s) newer: no ledger line left, taken from the journal" in out
        assert "2 undo item(s) from the journal alone" in out
        assert "acct002 201" in out and "acct001 200" not in out.split("journal alone")[1]
        done = await world.run(undo)
        assert done.returncode == 0, done.stderr.decode()
        assert state(world) == before

    async def test_a_rollback_of_a_rollback_is_refused(self, world: World) -> None:
        """Asking to roll back the rollback campaign exits 2 with a clear message and writes no
        job; so does a ledger holding only a rollback."""
        await campaign(world)
        undo = world.dir / "undo.csv"
        await rollback(world, "--out", str(undo))
        again = world.dir / "again.csv"
        refused = await rollback(world, "--out", str(again), "--campaign", "campaign-rollback")
        assert refused.returncode == 2
        assert "a rollback campaign cannot be rolled back" in refused.stderr.decode()
        assert not again.exists()
        alone = World(world.sandbox, world.dir / "alone")
        alone.dir.mkdir()
        alone.accounts.write_bytes(world.accounts.read_bytes())
        done = await alone.run(undo)
        assert done.returncode == 0, done.stderr.decode()
        only = await rollback(alone, "--out", str(again))
        assert only.returncode == 2
        assert "holds only rollback campaign(s) (campaign-rollback)" in only.stderr.decode()


def test_the_cli_refuses_to_overwrite_the_ledger(tmp_path: Path) -> None:
    """--out naming the ledger itself exits 2 and leaves the ledger as it was."""
    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text(OK.to_json() + "\n")
    result = CliRunner().invoke(main, ["rollback", str(ledger), "--out", str(ledger)])
    assert result.exit_code == 2
    assert "that is the ledger's own file" in result.output
    assert ledger.read_text() == OK.to_json() + "\n"
