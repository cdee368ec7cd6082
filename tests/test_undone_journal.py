"""Who made a retweet after an ``ok`` undo (the journal's ``undone``), where the ledger does not
say it: an older ledger backup beside a newer journal (B1), a resume of one (B2), a later holder
of the account in the multi-machine mode (B3), a rollback repeated on a lost ledger (B4); and a
random harness that extends the owners-at-work invariant (`tests.test_invariants.check_owner_seed`)
to an older backup restored after the campaign, rolled back at once or resumed first.

B2 is closed: a resume sends no item again whose line the backup lost when the journal shows how
it ended ``ok`` (``made``, ``owner``, ``undecided``, ``undone``); it records each as it ended. It
used to send again an undo that a retweet of the campaign followed (an undo, a retweet, a later
undo, all lost), deleting a retweet the owner made since the last: the random resume harness
failed 66 of 1000 seeds so, and none now.

The campaigns run in virtual time (`bulkrt.simulation`): the real dispatcher, ledger writer and
journal against the sandbox's state; ``--redis`` cases use a real ``redis-server``."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

from bulkrt.core.attribution import Evidence, Origin, settled_origin
from bulkrt.core.items import Action, Item, Status
from bulkrt.errors import RollbackError
from bulkrt.fleet.connection import connect
from bulkrt.fleet.shared_journal import SharedJournal, load_journal_state
from bulkrt.jobs.keys import derived_key
from bulkrt.jobs.rows import Row
from bulkrt.ledger.journal import JournalEvent
from bulkrt.ledger.journal import SentJournal as LocalJournal
from bulkrt.ledger.reader import read_ledger
from bulkrt.ledger.resume import finished_keys
from bulkrt.ledger.undo import plan_rollback
from bulkrt.sandbox.config import SandboxConfig
from bulkrt.simulation.harness import Simulation
from tests.redis_server import RedisServer
from tests.test_invariants import (
    campaign_with_backups,
    job_items,
    owners_verdict,
    repeated_items,
    sim_until_done,
    undecided_pairs,
)
from tests.test_mistakes import bulkrt

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
    assert undo_pairs(ledger) == []  # before the fix: [("acct001", "300")], the owner's retweet


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
    assert undo_pairs(ledger) == [(ACCOUNT, TWEET)]  # before the fix: [] ('no longer retweeted: 1')


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


def test_b2_resume_after_an_older_backup_replays_nothing_the_journal_saw_end(
    tmp_path: Path,
) -> None:
    """The longer replay: the backup lost the lines of C's undo, of the retweet that followed
    it and of a later undo; the owner retweeted after the last. The resume sends none of the
    three again (it used to send the first undo again, deleting the owner's retweet, because a
    retweet of the campaign followed it): each is recorded ``ok`` as the journal says it ended,
    with no ``http``, and the rollback then finds nothing of C's to undo."""
    sim, retweets = world()
    ledger = tmp_path / "c.jsonl"
    sim.run(job(R), ledger)
    backup = ledger.read_bytes()
    sim.run(job(R, U, R, U), ledger)
    assert retweets == set()
    retweets.add(TWEET)  # the owner, after C's last undo
    ledger.write_bytes(backup)
    sent = len(sim.state.log)
    run = sim.run(job(R, U, R, U), ledger)
    assert not run.crashed and not run.stats.count(Status.ERROR)
    assert len(sim.state.log) == sent  # nothing sent again
    replayed = [record for record in read_ledger(ledger)][1:]
    assert [(r.action, r.status, r.retweeted, r.preexisting, r.http) for r in replayed] == [
        (U, Status.OK, False, False, None),
        (R, Status.OK, True, False, None),
        (U, Status.OK, False, False, None),
    ]
    assert [(r.attempts, r.sent) for r in replayed] == [(0, None)] * 3
    plan = plan_rollback(ledger)
    assert (plan.undo, plan.undecided, plan.owners_undone) == ((), (), ())
    assert retweets == {TWEET}  # the owner's retweet stands


def test_b2_a_key_reused_for_another_row_is_not_taken_as_ended(tmp_path: Path) -> None:
    """An ``id`` the journal saw end for one row (a retweet of Tweet 300, its line lost with an
    older backup) given to another row (Tweet 301) in the next job: that row is sent (its
    Tweet is retweeted), not recorded as ended by what the journal says of the other one."""
    sim, retweets = world()
    ledger = tmp_path / "c.jsonl"
    sim.run([Item("x1", "C", ACCOUNT, TWEET, R, "a.csv", 2)], ledger)
    ledger.write_bytes(b"")
    run = sim.run([Item("x1", "C", ACCOUNT, "301", R, "b.csv", 2)], ledger)
    assert not run.crashed
    assert retweets == {TWEET, "301"}
    (line,) = read_ledger(ledger)
    assert (line.tweet_id, line.status, line.http) == ("301", Status.OK, 200)


# -- B3: --redis, a later holder of the account after the job's undo -----------------------


async def two_holders(
    redis_server: RedisServer, undo: Item, again: Item, published: Evidence, made: bool
) -> tuple[Evidence, bool, Origin]:
    """``--redis``, one job J holding ``undo`` and then ``again`` on one pair, ``again``
    published with ``published`` (and ``made``, the driver's word on the pair): the first
    holder of the account journals the undo ``undone`` and closes; a later holder loads
    ``again`` alone. Returns the first holder's evidence for ``again`` and its ``made``, and
    the later holder's verdict on an "already retweeted" for ``again``."""
    redis = await connect(redis_server.url)
    jobs = {undo.key: "J", again.key: "J"}
    pairs = {again.key: (ACCOUNT, TWEET), undo.key: (ACCOUNT, TWEET)}
    try:
        states, known = await load_journal_state(
            redis, "bulkrt:", [("J", again, published, made), ("J", undo, Evidence(), made)]
        )
        first = SharedJournal(redis, "bulkrt:", jobs, states, known, pairs)
        first.undone(undo)
        evidence, first_made = first.evidence(again.key), first.made(again)
        await first.close()
        states, known = await load_journal_state(redis, "bulkrt:", [("J", again, published, made)])
        later = SharedJournal(redis, "bulkrt:", jobs, states, known, pairs)
        return (
            evidence,
            first_made,
            settled_origin(True, later.evidence(again.key), made=later.made(again)),
        )
    finally:
        await redis.aclose()


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
    first, first_made, later = await two_holders(redis_server, undo, again, published, True)
    # the first holder's own word: held
    assert settled_origin(True, first, made=first_made) is Origin.OWNER
    assert later is Origin.OWNER  # before the fix: Origin.CAMPAIGN


async def test_b3_a_later_holder_drops_an_earlier_runs_possible_attempt_after_the_jobs_undo(
    redis_server: RedisServer,
) -> None:
    """As the previous case with K2's earlier attempt only possibly applied (a timeout, then
    error): embedded, the owner's retweet after the job's undo is the owner's; the later
    holder calls it undecidable (the rollback undoes it and lists it)."""
    _, undo, again = job(R, U, R)
    published = Evidence(possible=True)
    first, _, later = await two_holders(redis_server, undo, again, published, False)
    assert settled_origin(True, first, made=False) is Origin.OWNER
    assert later is Origin.OWNER  # before the fix: Origin.UNDECIDED


# -- B4: rolling back again after a rollback of a lost ledger ------------------------------


def test_b4_rollback_again_after_the_undo_run_of_a_lost_ledger_says_nothing_is_left(
    tmp_path: Path,
) -> None:
    """C's retweet of Tweet 300 is made; its ledger is lost (emptied), the journal kept. The
    README's loop: `bulkrt rollback L --out undo.csv --force && bulkrt run undo.csv ...` can be
    repeated until everything is undone, and with nothing left rollback says so and exits 0.
    The first rollback takes C from the journal and its undo run undoes the retweet; the second
    exits 2: "holds only rollback campaign(s) (C-rollback); a rollback cannot be rolled back"
    (the rollback's ``undone`` lines drop C's origins, so the journal no longer names C)."""
    sim, retweets = world()
    ledger = tmp_path / "c.jsonl"
    sim.run(job(R), ledger)
    ledger.write_bytes(b"")  # lost
    undo = tmp_path / "undo.csv"
    command = ["rollback", str(ledger), "--out", str(undo), "--force"]
    first = bulkrt(*command, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "1 undo item(s)" in first.stdout
    plan = plan_rollback(ledger)
    rows = [Item(derived_key(r.campaign, r.account, r.action, r.tweet_id, 0), r.campaign,
                 r.account, r.tweet_id, r.action, "undo.csv", n)
            for n, r in enumerate(plan.undo, start=2)]  # fmt: skip
    sim.run(rows, ledger)
    assert retweets == set()
    again = bulkrt(*command, cwd=tmp_path)
    assert (again.returncode, again.stderr) == (0, "")  # before: exit 2
    assert "0 undo item(s)" in again.stdout


# -- the owners-at-work invariant, extended: an older ledger backup after the campaign ------------

#: seeds of each harness case (``BULKRT_SIM_SEEDS`` scales them, as the invariants' own)
BACKUP_SEEDS = max(8, int(os.environ.get("BULKRT_SIM_SEEDS", "200")) // 8)


def check_backup_seed(seed: int, directory: Path, *, resume: bool) -> list[str]:
    """After the campaign, the ledger is put back as one of its earlier backups (the journal
    stays as it is); with ``resume`` the same job is run again to completion (what the README
    says to do), and no owner acts meanwhile. Then rollback and its run. What breaks the
    invariant, if anything: a retweet the campaign made that stays, a retweet the owners held
    when the campaign ended that is gone without being undecidable, more undecidable pairs than
    attempts that may have been applied."""
    sim, book, ledger, backups, rng, chaos, rows = campaign_with_backups(seed, directory)
    owners = book.held_by("owner")
    ledger.write_bytes(rng.choice(backups[:-1]))
    if resume:
        items = repeated_items(rows, "campaign.csv")
        sim_until_done(sim, items, ledger, rng, chaos, damage_ok=False)
    undecided = undecided_pairs(ledger)
    plan = plan_rollback(ledger)
    broken = []
    whole = {(row.account, row.tweet_id) for row in plan.undo}
    by_account = {
        (row.account, row.tweet_id)
        for account in {account for account, _ in whole}
        for row in plan_rollback(ledger, accounts=[account], campaigns=["campaign"]).undo
    }
    if by_account != whole:
        broken.append(f"--account selections differ from the whole: {by_account ^ whole}")
    undecided |= {(row.account, row.tweet_id) for row in plan.undecided}
    if plan.undo:
        undo_rows = [Row(r.campaign, r.account, r.tweet_id, Action.UNDO) for r in plan.undo]
        sim_until_done(sim, job_items(undo_rows, "undo.csv"), ledger, rng, chaos, damage_ok=False)
    try:
        if plan_rollback(ledger).undo:
            broken.append("a second rollback finds more to undo")
    except RollbackError as exc:
        broken.append(f"a second rollback refused: {exc}")
    broken += owners_verdict(sim, book, owners, undecided, chaos)
    return broken


def broken_seeds(
    check: Callable[[int, Path], list[str]], seeds: int
) -> list[tuple[int, list[str]]]:
    """The seeds of ``range(seeds)`` that ``check`` (seed, scratch directory) finds broken,
    with what broke (scratch files in memory when the machine has it: fsync there costs
    nothing)."""
    failed = []
    shm = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(dir=shm, prefix="bulkrt-seeds-") as scratch:
        for seed in range(seeds):
            directory = Path(scratch) / str(seed)
            directory.mkdir()
            broken = check(seed, directory)
            if broken:
                failed.append((seed, broken))
    return failed


def failing_seeds(*, resume: bool) -> list[tuple[int, list[str]]]:
    """The seeds `check_backup_seed` finds broken, with what broke."""
    return broken_seeds(partial(check_backup_seed, resume=resume), BACKUP_SEEDS)


def test_rollback_at_once_of_an_older_backup_keeps_the_owners_and_undoes_the_campaigns() -> None:
    """The README: rollback trusts the journal's origin over the ledger's and undoes the
    campaign's retweets even when their ledger lines are gone (B1 at random); and rollback can
    be repeated until nothing is left (B4 at random: the backup restored was the empty one)."""
    failed = failing_seeds(resume=False)
    assert not failed, f"{len(failed)} of {BACKUP_SEEDS} seeds: {failed[:5]}"


def test_resume_of_an_older_ledger_backup_then_rollback_keeps_the_owners() -> None:
    """The README: ledger lines lost after the fact (an older backup) are resent on resume and
    settled by the journal, never turned into the owners' retweets (B2 at random)."""
    failed = failing_seeds(resume=True)
    assert not failed, f"{len(failed)} of {BACKUP_SEEDS} seeds: {failed[:5]}"
