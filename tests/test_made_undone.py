"""The journal's "made" of a campaign's retweet stops counting once an ``ok`` undo of that
(account, Tweet) came after it, whoever's undo it was (the campaign's own undo row, another
campaign's, a rollback's): an "already retweeted" heard later is the owner's, however many
repeated rows hear it, and a rollback leaves it; a retweet the campaign makes again is its own."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import anyio

from bulkrt.core.attribution import Evidence, Origin
from bulkrt.core.items import Action, Item, Status
from bulkrt.fleet.connection import connect
from bulkrt.fleet.shared_journal import SharedJournal, load_journal_state
from bulkrt.ledger.journal import JournalEvent
from bulkrt.ledger.record import LedgerRecord
from bulkrt.ledger.resume import finished_keys
from bulkrt.ledger.undo import plan_rollback
from tests.redis_server import RedisServer
from tests.test_rollback import OK, PRE
from tests.test_rollback_adv21 import rollback_and_run, write_job
from tests.test_run import MakeWorld, World, both_modes, eventually

RETWEET = ("C", "acct001", "300", "retweet")
UNDO = ("C", "acct001", "300", "undo")


def last(world: World) -> tuple[int | None, bool | None]:
    line = world.lines()[-1]
    return line["http"], line["preexisting"]


async def owner_retweets_then_repeated_rows_stay_the_owners(
    world: World, job: list[tuple[str, str, str, str]]
) -> None:
    """The owner retweets Tweet 300; C's job, with its retweet row repeated twice in two runs,
    hears 'already retweeted' both times and takes it for the owner's; every rollback (C's, then
    all) leaves it."""
    world.sandbox.state.retweets[world.user_id("acct001")].add("300")
    again = [*job, RETWEET]
    assert (await world.run(write_job(world, again, "c.csv"))).returncode == 0
    assert last(world) == (400, True)
    assert (await world.run(write_job(world, [*again, RETWEET], "c.csv"))).returncode == 0
    assert last(world) == (400, True)
    out = await rollback_and_run(world, "--campaign", "C")
    assert "0 undo item(s)" in out and "left alone: 1 retweeted before the campaign" in out, out
    assert "0 undo item(s)" in await rollback_and_run(world)
    assert world.retweets("acct001") == {"300"}


async def test_after_the_campaigns_own_undo_an_owner_retweet_stays_the_owners(
    make_world: MakeWorld,
) -> None:
    """C retweets Tweet 300, C's own undo row (a later run) undoes it, the owner retweets it:
    C's repeated retweet rows take it for the owner's and rollbacks leave it."""
    world = await make_world(users=2, limit=50, window=1.0)
    assert (await world.run(write_job(world, [RETWEET], "c.csv"))).returncode == 0
    assert (await world.run(write_job(world, [RETWEET, UNDO], "c.csv"))).returncode == 0
    assert world.retweets("acct001") == set()
    await owner_retweets_then_repeated_rows_stay_the_owners(world, [RETWEET, UNDO])


async def test_after_another_campaigns_undo_an_owner_retweet_stays_the_owners(
    make_world: MakeWorld,
) -> None:
    """C retweets Tweet 300, campaign D's undo row undoes it, the owner retweets it: C's
    repeated retweet rows take it for the owner's and rollbacks leave it."""
    world = await make_world(users=2, limit=50, window=1.0)
    assert (await world.run(write_job(world, [RETWEET], "c.csv"))).returncode == 0
    d_undo = write_job(world, [("D", "acct001", "300", "undo")], "d.csv")
    assert (await world.run(d_undo)).returncode == 0
    assert world.retweets("acct001") == set()
    await owner_retweets_then_repeated_rows_stay_the_owners(world, [RETWEET])


async def test_a_retweet_the_campaign_makes_again_after_an_undo_is_its_own(
    make_world: MakeWorld,
) -> None:
    """C retweets, undoes, then retweets Tweet 300 again (a 2xx): that retweet is C's
    (preexisting: false), a repeated row finding it says so too, and rollback undoes it."""
    world = await make_world(users=2, limit=50, window=1.0)
    assert (await world.run(write_job(world, [RETWEET], "c.csv"))).returncode == 0
    job = [RETWEET, UNDO, RETWEET]
    assert (await world.run(write_job(world, job, "c.csv"))).returncode == 0
    assert last(world) == (200, False)
    assert (await world.run(write_job(world, [*job, RETWEET], "c.csv"))).returncode == 0
    assert last(world) == (400, False)
    assert "1 undo item(s)" in await rollback_and_run(world)
    assert world.retweets("acct001") == set()


# --- FinishedKeys.made_stands, on ledgers written by hand -----------------------------------


def stands(tmp_path: Path, *lines: LedgerRecord, key: str = "k") -> bool:
    ledger = tmp_path / "l.jsonl"
    ledger.write_text("".join(line.to_json() + "\n" for line in lines))
    return finished_keys(ledger).made_stands(key, "acme", "20")


UNDONE = replace(OK, action=Action.UNDO, retweeted=False, key="u")


def test_a_made_retweet_stands_until_an_ok_undo_follows_its_line(tmp_path: Path) -> None:
    """A finished retweet's made stands with no undo on its pair, or with undos only before its
    line; any ok undo after its line (any campaign's) ends it, and owner lines after that do not
    bring it back; an undo that did not end ok does not count."""
    k = replace(OK, key="k")
    assert stands(tmp_path, k)
    assert stands(tmp_path, UNDONE, k)
    assert not stands(tmp_path, k, UNDONE)
    assert not stands(tmp_path, k, replace(UNDONE, campaign="other"))
    assert not stands(tmp_path, k, UNDONE, replace(PRE, key="k1"), replace(PRE, key="k2"))
    assert stands(tmp_path, k, UNDONE, replace(OK, key="k3"), key="k3")
    assert stands(tmp_path, k, replace(UNDONE, tweet_id="21"))
    assert stands(tmp_path, k, replace(UNDONE, account="other"))
    assert stands(tmp_path, k, replace(UNDONE, status=Status.REJECTED, http=403))


def test_undone_later_still_means_a_rollbacks_undo_is_the_last_word(tmp_path: Path) -> None:
    """The resume plan's warning keeps its meaning: a job's own retweet then undo is not a
    rollback's; a rollback's undo is, until a retweet follows it, and another campaign's undo
    after it leaves it so."""
    ledger = tmp_path / "l.jsonl"
    rolled = replace(UNDONE, campaign="spring-rollback", key="r")

    def undone_later(*lines: LedgerRecord) -> bool:
        ledger.write_text("".join(line.to_json() + "\n" for line in lines))
        return finished_keys(ledger).undone_later("acme", "20")

    k = replace(OK, key="k")
    assert not undone_later(k, UNDONE)
    assert undone_later(k, rolled)
    assert undone_later(k, rolled, replace(UNDONE, key="u2"))
    assert not undone_later(k, rolled, replace(PRE, key="k1"))
    assert not undone_later(k, rolled, replace(OK, key="k1"), replace(UNDONE, key="u2"))
    assert undone_later(k, rolled, replace(OK, key="k1"), replace(rolled, key="r2"))
    assert not undone_later(k, replace(rolled, tweet_id="21"))


# --- the same run's own undo ----------------------------------------------------------------


@both_modes
async def test_an_owner_retweet_after_the_runs_own_undo_stays_the_owners(
    make_world: MakeWorld,
) -> None:
    """One run of C's job retweets Tweet 300, undoes it, and retweets it again; between the undo
    and that last row (held back by the window) the owner retweets it. The last row hears
    'already retweeted' and takes it for the owner's, since the run's own ok undo ended the
    retweet it made (before: the run still held its 'made' in memory and took the owner's
    retweet for C's, so C's rollback undid it)."""
    world = await make_world(users=2, limit=1, window=3.0)
    uid = world.user_id("acct001")
    job = write_job(world, [RETWEET, UNDO, RETWEET], "c.csv")

    async def owner_retweets_after_the_undo() -> None:
        state = world.sandbox.state
        await eventually(
            lambda: any(
                e["method"] == "DELETE" and e["user_id"] == uid and e["status"] == "200"
                for e in list(state.log)
            )
        )
        state.retweets[uid].add("300")

    async with anyio.create_task_group() as group:
        group.start_soon(owner_retweets_after_the_undo)
        done = await world.run(job)
    assert done.returncode == 0, done.stderr.decode()
    lines = world.lines()
    assert [(line["action"], line["http"]) for line in lines] == [
        ("retweet", 200),
        ("undo", 200),
        ("retweet", 400),
    ]
    assert (lines[0]["preexisting"], lines[2]["preexisting"]) == (False, True)
    out = await rollback_and_run(world, "--campaign", "C")
    assert "0 undo item(s)" in out and "left alone: 1 retweeted before the campaign" in out, out
    assert world.retweets("acct001") == {"300"}


async def test_a_later_holder_of_the_account_loads_made_as_the_jobs_undo_left_it(
    redis_server: RedisServer,
) -> None:
    """``--redis``: what a worker taking the account over loads (`load_journal_state`) follows
    the job's events on the pair in order: C's made retweet counts for C only; an ok undo of
    the pair ends it, and what an earlier run made too; D's retweet made after that counts."""
    redis = await connect(redis_server.url)
    c_retweet, undo, again, d_retweet = (
        Item(f"k{n}", campaign, "acme", "300", action, "job.csv", n + 1)
        for n, (campaign, action) in enumerate(
            [
                ("C", Action.RETWEET),
                ("C", Action.UNDO),
                ("C", Action.RETWEET),
                ("D", Action.RETWEET),
            ]
        )
    )
    jobs = dict.fromkeys((c_retweet.key, undo.key, again.key, d_retweet.key), "J")

    async def loaded(item: Item, *, earlier_run_made: bool = False) -> bool:
        state = [("J", item, Evidence(), earlier_run_made)]
        _, made = await load_journal_state(redis, "bulkrt:", state)
        return (item.campaign, item.account, item.tweet_id) in made

    async def holder(*made: Item) -> SharedJournal:
        triples = [(item.campaign, item.account, item.tweet_id) for item in made]
        return SharedJournal(redis, "bulkrt:", jobs, {}, triples)

    try:
        first = await holder()
        first.record(c_retweet, JournalEvent.MADE)
        await first.close()
        assert await loaded(again) and not await loaded(d_retweet)
        assert await loaded(d_retweet, earlier_run_made=True)
        second = await holder(c_retweet)
        assert second.made(again)
        second.undone(undo)
        assert not second.made(again)
        await second.close()
        assert not await loaded(again)
        assert not await loaded(d_retweet, earlier_run_made=True)
        third = await holder()
        third.record(d_retweet, JournalEvent.MADE)
        await third.close()
        assert await loaded(d_retweet) and not await loaded(again, earlier_run_made=True)
    finally:
        await redis.aclose()


# --- the journal's `undone`, read back ------------------------------------------------------


def journal_of(tmp_path: Path, *events: tuple[Item, JournalEvent]) -> Path:
    """A ledger path whose journal holds ``events`` in order, written by `SentJournal`."""
    from bulkrt.ledger.journal import SentJournal

    ledger = tmp_path / "l.jsonl"
    journal = SentJournal(ledger)
    journal.open(finished=set())
    for item, event in events:
        if event is JournalEvent.UNDONE:
            journal.undone(item)
        else:
            journal.record(item, event)
    journal.close()
    return ledger


R0 = Item("r0", "C", "acme", "300", Action.RETWEET, "job.csv", 2)
U0 = Item("u0", "C", "acme", "300", Action.UNDO, "job.csv", 3)
R1 = Item("r1", "C", "acme", "300", Action.RETWEET, "job.csv", 4)


def test_an_undone_line_starts_the_pair_afresh_for_the_next_run_and_the_rollback(
    tmp_path: Path,
) -> None:
    """R0 made the retweet, U0 undid it, R1's attempt may have been applied and no answer
    settled it (its ledger lines lost): the next run takes no 'made' of the pair, and keeps R1's
    own evidence; the rollback's reading says undecided after U0's undo (before: made by C)."""
    from bulkrt.ledger.journal import SentJournal, journal_origins

    ledger = journal_of(
        tmp_path,
        (R0, JournalEvent.SENT), (R0, JournalEvent.MADE), (U0, JournalEvent.UNDONE),
        (R1, JournalEvent.SENT), (R1, JournalEvent.MAYBE),
    )  # fmt: skip
    again = SentJournal(ledger)
    again.open(finished=set())
    assert not again.made(R1) and not again.made(R0)
    assert again.evidence("r0").possible is False and again.evidence("r1").possible is True
    assert again.pair_possible(R0)  # R1's attempt, another row's, may have retweeted it
    again.close()
    reading = journal_origins(ledger)
    assert reading.origins == {("C", "acme", "300"): Origin.UNDECIDED}
    assert reading.last_undone == {("acme", "300"): "u0"} and reading.undone_keys == {"u0"}
    assert reading.named == {("C", "acme")}


def test_the_rollback_trusts_a_verdict_after_the_undo_the_ledger_ends_with(
    tmp_path: Path,
) -> None:
    """The ledger ends with U0's ok undo (R1 ended rejected after an attempt that may have been
    applied); the journal orders R1's attempt after U0: rollback undoes the pair and lists it as
    undecided. So it does when U0's line is lost (an older backup): the journal's undo is newer
    than anything the ledger says of the pair. An undo line the journal does not know (its
    ``undone`` lost in a crash) leaves the order unknown: the ledger's word stands."""
    ledger = journal_of(
        tmp_path,
        (R0, JournalEvent.SENT), (R0, JournalEvent.MADE), (U0, JournalEvent.UNDONE),
        (R1, JournalEvent.SENT), (R1, JournalEvent.MAYBE), (R1, JournalEvent.NONE),
    )  # fmt: skip
    made = replace(OK, key="r0", campaign="C", tweet_id="300")
    undo = replace(made, key="u0", action=Action.UNDO, retweeted=False, preexisting=None)
    refused = replace(made, key="r1", status=Status.REJECTED, http=403, retweeted=None)
    ledger.write_text("".join(line.to_json() + "\n" for line in (made, undo, refused)))
    plan = plan_rollback(ledger)
    assert [(r.account, r.tweet_id) for r in plan.undo] == [("acme", "300")]
    assert [(r.account, r.tweet_id) for r in plan.undecided] == [("acme", "300")]
    ledger.write_text("".join(line.to_json() + "\n" for line in (made, refused)))
    plan = plan_rollback(ledger)
    assert [(r.account, r.tweet_id) for r in plan.undecided] == [("acme", "300")]
    unknown = replace(undo, key="u9")
    ledger.write_text("".join(line.to_json() + "\n" for line in (made, unknown, refused)))
    assert plan_rollback(ledger).undo == ()


async def test_a_later_holder_loads_no_attempt_the_jobs_undo_of_the_pair_voided(
    redis_server: RedisServer,
) -> None:
    """``--redis``: R0's attempt may have been applied, then U0 (an undo of the pair) ended ok,
    and the account changed hands before R1: the next holder loads nothing of R0's attempt, so
    an "already retweeted" for R1 is the owner's, not undecided (before: R0's cleared state was
    still in ``jstate``). A key on another Tweet keeps its events."""
    redis = await connect(redis_server.url)
    elsewhere = Item("e0", "C", "acme", "301", Action.RETWEET, "job.csv", 5)
    everyone = (R0, U0, R1, elsewhere)
    jobs = {item.key: "J" for item in everyone}
    pairs = {item.key: (item.account, item.tweet_id) for item in everyone}
    try:
        first = SharedJournal(redis, "bulkrt:", jobs, {}, (), pairs)
        for item in (R0, elsewhere):
            first.record(item, JournalEvent.SENT)
            first.record(item, JournalEvent.MAYBE)
        await first.close()
        states, _ = await load_journal_state(
            redis, "bulkrt:", [("J", item, Evidence(), False) for item in everyone]
        )
        assert SharedJournal(redis, "bulkrt:", jobs, states, (), pairs).pair_possible(R1)
        second = SharedJournal(redis, "bulkrt:", jobs, states, (), pairs)
        second.undone(U0)
        await second.close()
        states, _ = await load_journal_state(
            redis, "bulkrt:", [("J", item, Evidence(), False) for item in everyone]
        )
        later = SharedJournal(redis, "bulkrt:", jobs, states, (), pairs)
        assert not later.pair_possible(R1)
        assert not later.evidence("r0").possible
        assert later.evidence("e0").possible
    finally:
        await redis.aclose()
