"""Adversarial pass adv23b on the journal's ``undone`` (who made a retweet after an ``ok`` undo):
the failures found, each as a test that fails until it is fixed, and a random harness that
extends the owners-at-work invariant (`tests.test_invariants.check_owner_seed`) to what it leaves
out. The findings, with what held, are in the pass's notes (B1..).

The campaigns run in virtual time (`bulkrt.simulation`): the real dispatcher, ledger writer and
journal against the sandbox's state; ``--redis`` cases use a real ``redis-server``."""

from __future__ import annotations

import random
from pathlib import Path

from bulkrt.core.attribution import Evidence, Origin, settled_origin
from bulkrt.core.items import Action, Item, Status
from bulkrt.fleet.connection import connect
from bulkrt.fleet.shared_journal import SharedJournal, load_journal_state
from bulkrt.jobs.keys import derived_key
from bulkrt.ledger.journal import JournalEvent
from bulkrt.ledger.journal import SentJournal as LocalJournal
from bulkrt.ledger.reader import read_ledger
from bulkrt.ledger.resume import finished_keys
from bulkrt.ledger.undo import plan_rollback
from bulkrt.sandbox.config import SandboxConfig
from bulkrt.simulation.harness import Simulation
from tests.redis_server import RedisServer

R, U = Action.RETWEET, Action.UNDO
ACCOUNT, TWEET = "acct001", "300"


def job(*actions: Action, campaign: str = "C") -> list[Item]:
    """The items ``bulkrt run`` makes of a job of ``actions`` on acct001's Tweet 300 (a repeated
    row's key has its occurrence)."""
    seen: dict[Action, int] = {}
    items = []
    for line, action in enumerate(actions, start=2):
        occurrence = seen[action] = seen.get(action, -1) + 1
        key = derived_key(campaign, ACCOUNT, action, TWEET, occurrence)
        items.append(Item(key, campaign, ACCOUNT, TWEET, action, "c.csv", line))
    return items


def world() -> tuple[Simulation, set[str]]:
    """A two-account sandbox in virtual time, and acct001's retweets in its state."""
    sim = Simulation(SandboxConfig(users=2, limit=50, window=1.0), seed=1)
    return sim, sim.state.retweets[sim.user_ids[ACCOUNT]]


def undo_pairs(ledger: Path) -> list[tuple[str, str]]:
    return [(row.account, row.tweet_id) for row in plan_rollback(ledger).undo]


# -- B1: a ledger restored from an older backup, rolled back at once ------------------------------


def test_b1_rollback_of_an_older_backup_leaves_an_owners_retweet_the_journal_saw_after_an_undo(
    tmp_path: Path,
) -> None:
    """C retweets Tweet 300 (the ledger is backed up), a later run undoes it (``undone`` in the
    journal), the owner retweets it, and C's repeated row finds it and takes it for the owner's
    (``owner`` in the journal). The older backup is put back beside the newer journal and rolled
    back: the journal says the campaign's retweet was undone and the one that stands is the
    owner's, but the rollback undoes it (the ledger's stale ``made`` wins)."""
    sim, retweets = world()
    ledger = tmp_path / "c.jsonl"
    sim.run(job(R), ledger)
    backup = ledger.read_bytes()
    sim.run(job(R, U), ledger)
    assert retweets == set()
    retweets.add(TWEET)  # the owner
    sim.run(job(R, U, R), ledger)
    assert [line.preexisting for line in read_ledger(ledger)][-1] is True
    ledger.write_bytes(backup)  # the older backup, beside the newer journal
    assert undo_pairs(ledger) == []  # seen: [("acct001", "300")], the owner's retweet


def test_b1_rollback_of_an_older_backup_leaves_a_retweet_the_campaign_made_after_two_undos(
    tmp_path: Path,
) -> None:
    """C's job retweets, undoes, retweets, undoes and retweets Tweet 300: the campaign's
    retweet stands. The ledger is put back as it was after the first retweet and undo: the
    journal holds ``made`` after the second ``undone``, but the rollback calls the pair
    'no longer retweeted' and leaves the campaign's retweet (it trusts a verdict after an
    ``undone`` only when that undo's key is the ledger's last word)."""
    sim, retweets = world()
    ledger = tmp_path / "c.jsonl"
    sim.run(job(R, U), ledger)
    backup = ledger.read_bytes()
    sim.run(job(R, U, R, U, R), ledger)
    assert retweets == {TWEET}  # the campaign's (a 2xx)
    ledger.write_bytes(backup)
    assert undo_pairs(ledger) == [(ACCOUNT, TWEET)]  # seen: [] ('no longer retweeted: 1')


# -- B2: resume re-sends an undo the journal recorded as done --------------------------------


def test_b2_resume_after_an_older_backup_does_not_undo_an_owners_retweet_made_since(
    tmp_path: Path,
) -> None:
    """As B1's first case, then the operator does what the README says for lost ledger lines:
    runs the same job again (resume), then rolls back. The resume re-sends C's undo row, whose
    ``undone`` is in the journal: it deletes the owner's retweet; C's repeated row then makes a
    retweet of its own (a 2xx), which the rollback undoes. The owner's retweet is gone, and no
    summary names it (not undecided, not ``owners_undone``)."""
    sim, retweets = world()
    ledger = tmp_path / "c.jsonl"
    sim.run(job(R), ledger)
    backup = ledger.read_bytes()
    sim.run(job(R, U), ledger)
    retweets.add(TWEET)  # the owner, after C's undo
    sim.run(job(R, U, R), ledger)
    ledger.write_bytes(backup)
    run = sim.run(job(R, U, R), ledger)
    assert not run.crashed and not run.stats.count(Status.ERROR)
    plan = plan_rollback(ledger)
    assert (plan.undecided, plan.owners_undone) == ((), ())
    for row in plan.undo:
        retweets.discard(row.tweet_id)  # the rollback's undo run
    assert retweets == {TWEET}  # seen: set(): the owner's retweet is gone, unnamed


# -- B3: --redis, a later holder of the account after the job's undo -----------------------


async def test_b3_a_later_holder_drops_an_earlier_runs_made_of_a_key_after_the_jobs_undo(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """``--redis``: an earlier run made C's retweet of Tweet 300 with row K2 (a repeated row) and
    its ledger line was lost, so the driver publishes K2 with the journal's evidence 'made'. In
    this job the first holder of acct001 sends C's undo row (ok: ``undone``, ``madeby`` reset),
    and is killed; the owner retweets; a later holder takes the account over and K2 hears
    'already retweeted'. Embedded, the undo voids K2's earlier evidence and the verdict is the
    owner's; the later holder loads K2's 'made' as published and takes the owner's retweet for
    C's (and C's rollback undoes it)."""
    first_row, undo, again = job(R, U, R)
    ledger = tmp_path / "c.jsonl"
    run1 = LocalJournal(ledger)  # the earlier run's journal: K1 made, the undo, K2 made again
    run1.open(finished=set())
    for item, event in [(first_row, "sent"), (first_row, "made"), (undo, "undone"),
                        (again, "sent"), (again, "made")]:  # fmt: skip
        if event == "undone":
            run1.undone(item)
        else:
            run1.record(item, JournalEvent(event))
    run1.close()
    # K2's ledger line lost (an older backup, or a kill before its sync): no ledger at all here
    earlier = LocalJournal(ledger)
    earlier.open(finished=finished_keys(ledger))
    published = earlier.evidence(again.key)  # what the driver publishes K2 with
    earlier.close()
    assert published.made
    redis = await connect(redis_server.url)
    jobs = {undo.key: "J", again.key: "J"}
    pairs = {again.key: (ACCOUNT, TWEET), undo.key: (ACCOUNT, TWEET)}
    try:
        states, made = await load_journal_state(
            redis, "bulkrt:", [("J", again, published, True), ("J", undo, Evidence(), True)]
        )
        first = SharedJournal(redis, "bulkrt:", jobs, states, made, pairs)
        first.undone(undo)
        assert settled_origin(True, first.evidence(again.key), made=first.made(again)) is (
            Origin.OWNER
        )  # the first holder's own word: held
        await first.close()
        states, made = await load_journal_state(redis, "bulkrt:", [("J", again, published, True)])
        later = SharedJournal(redis, "bulkrt:", jobs, states, made, pairs)
        verdict = settled_origin(True, later.evidence(again.key), made=later.made(again))
        assert verdict is Origin.OWNER  # seen: Origin.CAMPAIGN
    finally:
        await redis.aclose()


async def test_b3_a_later_holder_drops_an_earlier_runs_possible_attempt_after_the_jobs_undo(
    redis_server: RedisServer,
) -> None:
    """As the previous case with K2's earlier attempt only possibly applied (a timeout, then
    error): embedded, the owner's retweet after the job's undo is the owner's; the later
    holder calls it undecidable (the rollback undoes it and lists it)."""
    redis = await connect(redis_server.url)
    _, undo, again = job(R, U, R)
    jobs = {undo.key: "J", again.key: "J"}
    published = Evidence(possible=True)
    pairs = {again.key: (ACCOUNT, TWEET), undo.key: (ACCOUNT, TWEET)}
    try:
        states, made = await load_journal_state(
            redis, "bulkrt:", [("J", again, published, False), ("J", undo, Evidence(), False)]
        )
        first = SharedJournal(redis, "bulkrt:", jobs, states, made, pairs)
        first.undone(undo)
        assert settled_origin(True, first.evidence(again.key), made=False) is Origin.OWNER
        await first.close()
        states, made = await load_journal_state(redis, "bulkrt:", [("J", again, published, False)])
        later = SharedJournal(redis, "bulkrt:", jobs, states, made, pairs)
        verdict = settled_origin(True, later.evidence(again.key), made=later.made(again))
        assert verdict is Origin.OWNER  # seen: Origin.UNDECIDED
    finally:
        await redis.aclose()


_ = random  # the harness below
