"""Rollback exactness (adversarial pass 21): a rollback undoes exactly what the campaign did and
never what the account owners did themselves, also after a first rollback (a Tweet retweeted
again, an undo the API refused), with items in error, and with two overlapping campaigns; and a
random invariant over campaign runs, owner actions, rollbacks and undo runs on the sandbox.

``BULKRT_ROLLBACK_SEEDS=N`` runs N seeds of the random invariant (default: a few, for CI), each of
``BULKRT_ROLLBACK_STEPS`` steps (default 12)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from bulkrt.core.attribution import Origin
from bulkrt.core.items import Action, Status
from bulkrt.jobs.keys import derived_key
from bulkrt.jobs.rows import check_row
from bulkrt.ledger.undo import select_undo
from bulkrt.sandbox.config import Endpoint, FaultKind
from bulkrt.sandbox.faults import ScriptedFault
from tests.test_rollback import FAILED, OK, PRE, REFUSED, ROLLED
from tests.test_run import MakeWorld, World, eventually, fork_cli, run_cli

#: the derived key of the first rollback's undo of (acme, 20)
FIRST_UNDO = derived_key("spring-rollback", "acme", "undo", "20", 0)


def undo_of(*lines: object, **selection: object) -> list[str]:
    """The undo rows `select_undo` chooses for ``lines``, as ``account:tweet[#id]``."""
    plan = select_undo(list(lines), source="l", **selection)  # type: ignore[arg-type]
    return [f"{r.account}:{r.tweet_id}" + (f"#{r.id}" if r.id else "") for r in plan.undo]


# --- R8: a later retweet's undo has a key of its own ------------------------------------------


def test_a_retweet_made_again_after_a_rollback_gets_an_undo_a_run_sends() -> None:
    """After the first rollback's undo finished, the campaign's new retweet of the Tweet gets an
    undo with an id of its own (the derived key is finished: a run would skip it)."""
    ledger = [OK, replace(ROLLED, key=FIRST_UNDO), replace(OK, key="k2")]
    assert undo_of(*ledger) == ["acme:20#spring-rollback/acme/20/1"]
    second = replace(ROLLED, key="spring-rollback/acme/20/1")
    assert undo_of(*ledger, second) == []
    assert undo_of(*ledger, second, replace(OK, key="k3")) == ["acme:20#spring-rollback/acme/20/2"]


def test_an_undo_id_of_long_names_fits_a_job_file_and_stays_its_own() -> None:
    """With names too long for the plain id, the id still fits a job row (checked as `run`
    reads it), names the pair by digest, and the next rollback moves on to the next one."""
    campaign, account = "c" * 150, "a" * 100
    ok = replace(OK, campaign=campaign, account=account)
    first = derived_key(f"{campaign}-rollback", account, "undo", "20", 0)
    rolled = replace(ROLLED, campaign=f"{campaign}-rollback", account=account, key=first)
    [row] = select_undo([ok, rolled, replace(ok, key="k2")], source="l").undo
    assert row.id is not None and len(row.id) <= 200 and row.id.endswith("/1")
    fields = {"campaign": row.campaign, "account": account, "tweet_id": "20", "action": "undo",
              "id": row.id}  # fmt: skip
    read = check_row(fields, source="u.csv", line=2, accounts={account}, default_campaign="u")
    assert read == replace(row, source="u.csv", line=2)
    again = replace(rolled, key=row.id)
    [second] = select_undo([ok, rolled, replace(ok, key="k2"), again, replace(ok, key="k3")],
                           source="l").undo  # fmt: skip
    assert second.id == row.id.removesuffix("/1") + "/2"


def test_an_unfinished_undo_keeps_its_key_so_a_run_resumes_it() -> None:
    """An undo that ended error is written again with the same derived key (no id)."""
    failed = replace(ROLLED, key=FIRST_UNDO, status=Status.ERROR, retweeted=None)
    assert undo_of(OK, failed) == ["acme:20"]


def test_an_undo_the_api_refused_is_written_again_under_a_new_key_and_listed() -> None:
    """An undo that ended rejected (a 403) is finished: the next rollback writes it with an id a
    run will send, and says the API refused it before."""
    refused = replace(ROLLED, key=FIRST_UNDO, status=Status.REJECTED, retweeted=None, http=403)
    plan = select_undo([OK, refused], source="l")
    assert [r.id for r in plan.undo] == ["spring-rollback/acme/20/1"]
    assert plan.refused_before == plan.undo
    text = "\n".join(plan.summary("u.csv", include_preexisting=False))
    assert "1 undo item(s) the API refused before (rejected)" in text and "acme 20" in text


def test_an_owner_retweet_found_after_the_rollback_is_left_alone() -> None:
    """The campaign's retweet undone by its rollback, then an 'already retweeted' the owner's
    (preexisting: true) is the one that stands: left alone."""
    plan = select_undo([OK, replace(ROLLED, key=FIRST_UNDO), replace(PRE, key="k2")], source="l")
    assert (plan.undo, plan.kept_preexisting) == ((), 1)


def test_a_retweet_made_after_undoing_the_owners_is_the_campaigns() -> None:
    """The campaign found the owner's retweet, undid it, then retweeted (a 2xx): that retweet is
    the campaign's and is undone (the owner's is gone; an undo cannot restore it)."""
    undone = replace(OK, action=Action.UNDO, retweeted=False, key="u")
    assert undo_of(PRE, undone, replace(OK, key="k2")) == ["acme:20"]


# --- R7: latest line error: unknown state, left alone -----------------------------------------


def test_an_item_whose_latest_line_is_error_is_left_alone_as_unknown() -> None:
    """A retweet that ended error with a `maybe` in the journal (undecided) is of unknown state:
    not undone, counted and named as unknown, so a re-run can settle it first."""
    plan = select_undo([FAILED], source="l", origins={("spring", "acme", "20"): Origin.UNDECIDED})
    assert plan.undo == () and plan.undecided == ()
    assert (plan.unknown, plan.unknown_pairs) == (1, (("acme", "20"),))


def test_a_refusal_after_a_maybe_stays_undecided_and_undone() -> None:
    """A rejected retweet (final) after an attempt that may have applied stays undecidable."""
    plan = select_undo([REFUSED], source="l", origins={("spring", "acme", "20"): Origin.UNDECIDED})
    assert [r.tweet_id for r in plan.undecided] == ["20"] and plan.unknown == 0


# --- R1: another campaign's retweet after it undid this one's ----------------------------------


def test_a_retweet_another_campaign_made_after_undoing_this_ones_is_left_alone() -> None:
    """A's retweet, B's undo of it, B's own retweet: rolling back A undoes nothing there (B's);
    rolling back B undoes it; B merely finding A's retweet in place leaves it A's."""
    a = replace(OK, campaign="A")
    b_undo = replace(OK, campaign="B", action=Action.UNDO, retweeted=False, key="bu")
    b_made = replace(OK, campaign="B", key="bm")
    plan = select_undo([a, b_undo, b_made], source="l", campaigns=("A",))
    assert (plan.undo, plan.other_campaigns) == ((), 1)
    assert "undone since and retweeted again by another campaign" in "\n".join(
        plan.summary("u.csv", include_preexisting=False)
    )
    assert undo_of(a, b_undo, b_made, campaigns=("B",)) == ["acme:20"]
    assert undo_of(a, b_undo, b_made) == ["acme:20"]
    b_found = replace(PRE, campaign="B", key="bf")
    assert undo_of(a, b_found, campaigns=("A",)) == ["acme:20"]
    assert undo_of(a, b_undo, campaigns=("A",)) == []


# --- against the sandbox, through the real CLI --------------------------------------------------


async def rollback(world: World, *extra: str) -> subprocess.CompletedProcess[bytes]:
    return await run_cli([sys.executable, "-m", "bulkrt", "rollback", str(world.ledger), *extra])


def write_job(world: World, rows: list[tuple[str, str, str, str]], name: str) -> Path:
    path = world.dir / name
    lines = ["campaign,account,tweet_id,action"] + [",".join(row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


async def rollback_and_run(world: World, *extra: str) -> str:
    undo = world.dir / "undo.csv"
    made = await rollback(world, "--out", str(undo), "--force", *extra)
    assert made.returncode == 0, made.stderr.decode()
    if not made.stdout.startswith(b"bulkrt rollback: 0 undo item(s)"):
        done = await world.run(undo)
        assert done.returncode in (0, 1), done.stderr.decode()
    return made.stdout.decode()


async def test_the_campaigns_second_retweet_of_a_tweet_is_rolled_back_too(
    make_world: MakeWorld,
) -> None:
    """R8: campaign, rollback, undo run, the job edited to retweet a Tweet again, then rollback
    and its run: the second retweet is undone too (a request is sent), and the account ends with
    none of the campaign's retweets."""
    world = await make_world(users=2, limit=50, window=1.0)
    job = [("Q", "acct001", "360", "retweet"), ("Q", "acct001", "361", "retweet")]
    assert (await world.run(write_job(world, job, "q.csv"))).returncode == 0
    await rollback_and_run(world)
    assert world.retweets("acct001") == set()
    again = await world.run(write_job(world, [*job, job[0]], "q.csv"))
    assert again.returncode == 1  # the two undone retweets are warned about
    assert world.retweets("acct001") == {"360"}
    out = await rollback_and_run(world)
    assert "1 undo item(s)" in out
    assert world.retweets("acct001") == set()
    undo = [line for line in world.lines() if line["campaign"] == "Q-rollback"]
    assert [line["key"] for line in undo][-1] == "Q-rollback/acct001/360/1"
    last = await rollback(world, "--out", str(world.dir / "x.csv"))
    assert last.stdout.startswith(b"bulkrt rollback: 0 undo item(s)")


async def test_an_undo_refused_once_is_sent_again_by_the_next_rollback(
    make_world: MakeWorld,
) -> None:
    """R8b: the undo run's DELETE answered 403 once; the next rollback says so and writes it
    under a new key, its run sends it, and the campaign's retweet is gone."""
    world = await make_world(users=2, limit=50, window=1.0)
    assert (
        await world.run(write_job(world, [("S", "acct001", "50", "retweet")], "s.csv"))
    ).returncode == 0
    world.sandbox.state.faults.script(ScriptedFault(FaultKind.JSON_403, endpoint=Endpoint.UNDO))
    await rollback_and_run(world)
    assert world.retweets("acct001") == {"50"}
    assert [line["status"] for line in world.lines()][-1] == "rejected"
    out = await rollback_and_run(world)
    assert "the API refused before (rejected)" in out
    assert world.retweets("acct001") == set()


# --- the random invariant -------------------------------------------------------------------

SEEDS = int(os.environ.get("BULKRT_ROLLBACK_SEEDS", "4"))
STEPS = int(os.environ.get("BULKRT_ROLLBACK_STEPS", "12"))
NAMES = ("acct001", "acct002")
TWEETS = ("300", "301", "302", "303")
CAMPAIGNS = ("C", "D")
OWNER = "owner"


@dataclass
class Model:
    """Who made each retweet that stands on the sandbox, per (account, Tweet)."""

    world: World
    rng: random.Random
    author: dict[tuple[str, str], str] = field(default_factory=dict)
    jobs: dict[str, list[tuple[str, str, str, str]]] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)

    def standing(self) -> set[tuple[str, str]]:
        return {(n, t) for n in NAMES for t in self.world.retweets(n)}

    def sync(self, campaign: str | None) -> None:
        """After a run: a pair gone has no author; a new one is ``campaign``'s."""
        now = self.standing()
        for pair in list(self.author):
            if pair not in now:
                del self.author[pair]
        for pair in now - set(self.author):
            assert campaign is not None, f"{pair} appeared in an undo run"
            self.author[pair] = campaign

    def undone_since(self, pair: tuple[str, str], campaign: str | None = None) -> bool:
        """Whether every retweet of ``pair`` the ledger says a campaign (``campaign``, or any)
        made -- an ok line, preexisting: false -- has an ok undo (anyone's) after it: then the
        journal knows those retweets are gone."""
        gone = True
        for line in self.world.lines():
            if line["status"] == "ok" and (line["account"], line["tweet_id"]) == pair:
                if line["action"] == "undo":
                    gone = True
                elif not line["preexisting"] and campaign in (None, line["campaign"]):
                    gone = False
        return gone

    def owner_acts(self) -> None:
        """The owner un-retweets any retweet, or retweets a Tweet whose every campaign-made
        retweet an ok undo in the ledger followed (whoever's undo, and whatever owner-found
        lines came after it). (A campaign retweet the owner undid and made again, with no undo
        in the ledger, is the campaign's to every request the API offers: undecidable.)"""
        pair = (self.rng.choice(NAMES), self.rng.choice(TWEETS))
        uid = self.world.user_id(pair[0])
        if pair in self.author:
            self.world.sandbox.state.retweets[uid].discard(pair[1])
            del self.author[pair]
            self.log.append(f"owner un-retweets {pair}")
        elif self.undone_since(pair):
            self.world.sandbox.state.retweets[uid].add(pair[1])
            self.author[pair] = OWNER
            self.log.append(f"owner retweets {pair}")

    async def campaign_runs(self) -> None:
        """A campaign's job grows by rows on distinct pairs (mostly retweets, a repeated row
        gets a key of its own) and runs again on the same ledger."""
        campaign = self.rng.choice(CAMPAIGNS)
        pairs = self.rng.sample([(n, t) for n in NAMES for t in TWEETS], self.rng.randint(1, 3))
        rows = self.jobs.setdefault(campaign, [])
        for pair in pairs:
            action = "undo" if self.rng.random() < 0.2 else "retweet"
            author = self.author.get(pair, campaign)
            if (
                action == "retweet"
                and author not in (campaign, OWNER)
                and not self.undone_since(pair, campaign)
            ):
                # Another campaign's retweet stands where this one's made a retweet that no
                # undo in the ledger followed (the owner removed it): to the journal, the
                # retweet found is this campaign's own, as in `owner_acts`: undecidable.
                continue
            rows.append((campaign, *pair, action))
        self.log.append(f"{campaign} runs {rows[-len(pairs) :]}")
        done = await self.world.run(write_job(self.world, rows, f"{campaign}.csv"))
        assert done.returncode in (0, 1), done.stderr.decode()
        self.sync(campaign)

    async def rolls_back(self, *, refuse: bool) -> None:
        """A rollback of one campaign or all, and its undo run (maybe with one undo refused):
        without a refusal, no retweet of a selected campaign stands and nothing else moved."""
        chosen = self.rng.choice([(), ("C",), ("D",)])
        if not any(line["campaign"] in (chosen or CAMPAIGNS) for line in self.world.lines()):
            return
        selection = [part for name in chosen for part in ("--campaign", name)]
        if refuse:
            fault = ScriptedFault(FaultKind.JSON_403, endpoint=Endpoint.UNDO)
            self.world.sandbox.state.faults.script(fault)
        before = dict(self.author)
        self.log.append(f"rollback {chosen or 'all'}{' (one undo refused)' if refuse else ''}")
        await rollback_and_run(self.world, *selection)
        self.world.sandbox.state.faults.scripted.clear()
        self.sync(None)
        if not refuse:
            selected = set(chosen or CAMPAIGNS)
            expected = {p: a for p, a in before.items() if a not in selected}
            assert self.author == expected, self.log


@pytest.mark.parametrize("seed", range(SEEDS))
async def test_rollbacks_leave_every_account_with_exactly_its_owners_retweets(
    make_world: MakeWorld, seed: int
) -> None:
    """Random campaign runs (two campaigns, repeated rows, undo rows), owner retweets and
    un-retweets, rollbacks (one campaign or all, some with an undo refused) and their runs: after
    `rollback` + `run` of every campaign at most twice, every account holds exactly the retweets
    its owner made (an owner's retweet a campaign undid is gone for good)."""
    world = await make_world(users=2, limit=100, window=1.0)
    model = Model(world, random.Random(seed))
    for _ in range(STEPS):
        step = model.rng.random()
        if step < 0.3:
            model.owner_acts()
        elif step < 0.75:
            await model.campaign_runs()
        else:
            await model.rolls_back(refuse=model.rng.random() < 0.3)
    for _ in range(2):
        if any(author != OWNER for author in model.author.values()):
            if world.lines():
                await rollback_and_run(world)
            model.sync(None)
    owners = {pair for pair, author in model.author.items() if author == OWNER}
    assert model.standing() == owners, model.log


# --- R9/R4: retweets in a -rollback campaign are refused before anything is sent ----------------


@pytest.mark.parametrize(
    ("name", "rows", "extra", "named_by"),
    [
        ("zr-rollback.csv", "account,tweet_id,action\nacct001,372,retweet\n", (), "file's name"),
        ("zr.csv", "account,tweet_id,action\nacct001,370,retweet\n",
         ("--campaign", "spring-rollback"), "--campaign"),
        ("zr.csv", "campaign,account,tweet_id,action\nE-rollback,acct001,320,undo\n"
         "E-rollback,acct001,323,retweet\n", (), "the row's campaign"),
    ],
    ids=["by the file name", "by --campaign", "by the row (a hand-edited undo job)"],
)  # fmt: skip
async def test_run_refuses_retweets_in_a_rollback_campaign(
    make_world: MakeWorld, name: str, rows: str, extra: tuple[str, ...], named_by: str
) -> None:
    """A retweet row whose campaign ends -rollback (from the file name, --campaign or the row)
    exits 2 naming FILE:LINE, the campaign and --campaign, before any request or ledger line."""
    world = await make_world(users=2, limit=50, window=1.0)
    job = world.dir / name
    job.write_text(rows)
    done = await world.run(job, *extra)
    err = done.stderr.decode()
    assert done.returncode == 2, err
    line = rows.count("\n")
    assert f"{name}:{line}: campaign: a retweet in campaign" in err
    assert "-rollback" in err and "--campaign NAME" in err
    named = (
        "the row's campaign" if named_by == "the row's campaign" else "(--campaign, else the file"
    )
    assert named in err
    assert world.sandbox.state.stats()["requests"] == 0
    assert world.lines() == []


async def test_undo_rows_in_a_rollback_campaign_stay_valid(make_world: MakeWorld) -> None:
    """The undo job rollback writes (undo rows of NAME-rollback) runs as before."""
    world = await make_world(users=2, limit=50, window=1.0)
    world.sandbox.state.retweets[world.user_id("acct001")].add("5")
    job = write_job(world, [("x-rollback", "acct001", "5", "undo")], "u.csv")
    done = await world.run(job)
    assert done.returncode == 0, done.stderr.decode()
    assert world.retweets("acct001") == set()


# --- R7 on the sandbox, R6: the JSON names the pairs; R5; R2 ----------------------------------


async def json_rollback(world: World, *extra: str) -> dict[str, Any]:
    made = await rollback(world, "--out", str(world.dir / "undo.csv"), "--force", "--json", *extra)
    assert made.returncode == 0, made.stderr.decode()
    document = json.loads(made.stdout)
    assert isinstance(document, dict)
    return document


async def test_items_in_error_are_left_alone_retried_then_rolled_back(
    make_world: MakeWorld,
) -> None:
    """R7/R8c: a retweet applied but answered by a reset and 503s, and one only 503s, end error:
    rollback leaves both alone as unknown (named in --json); the job run again settles them
    (one undecidable), and rollback + run then leave the account with none of them."""
    world = await make_world(users=2, limit=50, window=1.0)
    uid = world.user_id("acct001")
    faults = world.sandbox.state.faults
    faults.script(ScriptedFault(FaultKind.RESET_AFTER, count=1, user_id=uid))
    faults.script(ScriptedFault(FaultKind.E503, count=10, user_id=uid))
    job = write_job(
        world, [("CH", "acct001", "500", "retweet"), ("CH", "acct001", "501", "retweet")], "ch.csv"
    )
    failed = await world.run(job, "--max-attempts", "3")
    assert failed.returncode == 1 and [line["status"] for line in world.lines()] == ["error"] * 2
    assert world.retweets("acct001") == {"500"}
    first = await json_rollback(world)
    assert (first["undo"], first["left_alone"]["unknown"], first["written"]) == (0, 2, False)
    assert sorted(p["tweet_id"] for p in first["unknown"]) == ["500", "501"]
    faults.scripted.clear()
    assert (await world.run(job)).returncode == 0
    second = await json_rollback(world)
    assert second["undo"] == 2 and second["unknown"] == []
    assert second["undecided"] == [{"account": "acct001", "tweet_id": "500"}]
    assert second["undecided_left"] is False
    assert (await world.run(world.dir / "undo.csv")).returncode == 0
    assert world.retweets("acct001") == set()


async def test_leave_undecided_lists_them_in_json_and_text(make_world: MakeWorld) -> None:
    """--leave-undecided: the JSON lists the undecided pairs and counts them as left alone; the
    text lists them and does not say 'left alone: none'."""
    world = await make_world(users=2, limit=50, window=1.0)
    uid = world.user_id("acct001")
    world.sandbox.state.faults.script(ScriptedFault(FaultKind.RESET_AFTER, count=1, user_id=uid))
    assert (
        await world.run(write_job(world, [("U", "acct001", "7", "retweet")], "u.csv"))
    ).returncode == 0
    document = await json_rollback(world, "--leave-undecided")
    assert document["undecided"] == [{"account": "acct001", "tweet_id": "7"}]
    assert (document["undo"], document["left_alone"]["undecided"]) == (0, 1)
    text = await rollback(world, "--out", str(world.dir / "t.csv"), "--leave-undecided")
    out = text.stdout.decode()
    assert "left alone (--leave-undecided):" in out and "acct001 7" in out
    assert "left alone: none" not in out


async def test_include_preexisting_with_leave_undecided_is_refused(tmp_path: Path) -> None:
    """R5: the two options contradict each other: exit 2, saying why, nothing written."""
    ledger = tmp_path / "l.jsonl"
    ledger.write_text(OK.to_json() + "\n")
    out = tmp_path / "u.csv"
    args = [
        "rollback",
        str(ledger),
        "--out",
        str(out),
        "--include-preexisting",
        "--leave-undecided",
    ]
    done = await run_cli([sys.executable, "-m", "bulkrt", *args])
    assert done.returncode == 2
    assert "contradict each other" in done.stderr.decode() and not out.exists()


async def test_rollback_of_a_ledger_a_run_is_writing_warns_that_it_is_partial(
    make_world: MakeWorld,
) -> None:
    """R2: while a `bulkrt run` holds the ledger's lock, rollback (text and --json) warns that
    the undo job covers only the items finished so far, naming the run's pid; once it ended,
    no warning."""
    world = await make_world(users=2, limit=50, window=1.0)
    world.sandbox.state.faults.script(
        ScriptedFault(FaultKind.HOLD, user_id=world.user_id("acct002"))
    )
    job = write_job(
        world, [("W", "acct001", "1", "retweet"), ("W", "acct002", "2", "retweet")], "w.csv"
    )
    async with fork_cli(world.run_args(job)) as child:
        await eventually(lambda: len(world.lines()) == 1)
        text = await rollback(world, "--out", str(world.dir / "u.csv"), "--force")
        scripted = await rollback(world, "--out", str(world.dir / "u.csv"), "--force", "--json")
        child.send_signal(signal.SIGKILL)
    for done in (text, scripted):
        assert done.returncode == 0, done.stderr.decode()
        assert "is being written by a run (pid " in done.stderr.decode()
        assert "covers only the items finished so far" in done.stderr.decode()
    assert "covers only the items finished so far" in json.loads(scripted.stdout)["ledger_in_use"]
    after = await rollback(world, "--out", str(world.dir / "u.csv"), "--force", "--json")
    assert json.loads(after.stdout)["ledger_in_use"] is None
    assert "being written" not in after.stderr.decode()


async def test_an_owners_retweet_after_the_rollback_stays_when_the_campaign_runs_again(
    make_world: MakeWorld,
) -> None:
    """The campaign's retweet undone by its rollback, the owner then retweets the Tweet, and the
    job (edited: the row repeated) hears 'already retweeted': that retweet is the owner's
    (preexisting: true, the journal's 'made' of the undone retweet no longer counts), and the
    next rollback + run leave it."""
    world = await make_world(users=2, limit=50, window=1.0)
    job = [("C", "acct001", "300", "retweet")]
    assert (await world.run(write_job(world, job, "c.csv"))).returncode == 0
    await rollback_and_run(world)
    world.sandbox.state.retweets[world.user_id("acct001")].add("300")
    await world.run(write_job(world, [*job, job[0]], "c.csv"))
    assert (world.lines()[-1]["http"], world.lines()[-1]["preexisting"]) == (400, True)
    out = await rollback_and_run(world)
    assert "0 undo item(s)" in out and "left alone: 1 retweeted before the campaign" in out
    assert world.retweets("acct001") == {"300"}
