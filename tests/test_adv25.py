"""Adversarial review of the "ended before" resume rule (`SentJournal.ended_before`): a resumed
run does not send again an item whose ledger line is gone when the journal shows how it ended
``ok`` for the same row and nothing happened to its pair since but the endings of later rows of
its campaign, unless an item of this run was sent on the pair first.

Each test is a case the review found where the first form of the rule (any ending, until a
retweet of this run changed the pair) broke a promise of the README or recorded something
false; the rule was narrowed so, and these now pass:

* the journal's word that a key ended was taken although the pair changed after it, outside
  this run: a later undo of another key (a rollback's, another campaign's) took the retweet
  back, or a later run made the retweet again and failed to replay the undo
  (``test_a_retweet_*``, ``test_cli_rerun_*``, ``test_an_undo_*``, and at random:
  ``test_resume_of_a_rolled_back_campaign_*``);
* an undo of this run did not count as a change of the pair (``test_this_runs_undo_*``, and at
  random: ``test_resume_of_an_older_backup_changes_nothing_*``);
* an undo recorded as ended had ``preexisting: null``, which `bulkrt status` counts as a retweet
  of undecidable origin (``test_status_*``); lines recorded as ended said ``attempts: 1`` and
  ``sent`` at the resume's time (``test_a_line_recorded_*``).

Still open, marked ``xfail`` (strict):

* the journal names no user: another accounts file with the same account names, beside an
  older backup, gets production's endings (``test_another_users_*``);
* the journal's endings of later rows do not supersede an unfinished earlier row as the whole
  ledger's do (open before the rule too): that row is sent and may remove an owner's retweet
  (``test_an_undo_the_whole_ledger_supersedes_*``);
* the dry run prices and times requests the run will not send (``test_dry_run_*``).

The simulated cases run in virtual time (`bulkrt.simulation`): the real dispatcher, ledger
writer and journal against the sandbox's state. The others run the real CLI against the
sandbox."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from bulkrt.cli import main
from bulkrt.core.items import Action, Status
from bulkrt.jobs.rows import Row
from bulkrt.ledger.reader import read_ledger
from bulkrt.ledger.record import LedgerRecord
from bulkrt.ledger.undo import plan_rollback
from bulkrt.reporting.model import ReportBuilder
from bulkrt.sandbox.config import Endpoint, FaultKind, SandboxConfig
from bulkrt.sandbox.faults import ScriptedFault
from bulkrt.simulation.harness import Simulation
from tests.test_invariants import (
    ACCOUNTS,
    campaign_with_backups,
    job_items,
    repeated_items,
    sim_until_done,
)
from tests.test_run import PYTHON_M_BULKRT, MakeWorld, run_cli
from tests.test_undone_journal import ACCOUNT, TWEET, broken_seeds, job, world

R, U = Action.RETWEET, Action.UNDO


def last_word(ledger: Path) -> LedgerRecord:
    """The ledger's latest ``ok`` line on acct001's Tweet 300: what the ledger says of it now."""
    return [r for r in read_ledger(ledger) if r.status is Status.OK][-1]


def fail_all(sim: Simulation, endpoint: Endpoint) -> None:
    """Every request of acct001 to ``endpoint`` fails with a 503 (not applied) from now on."""
    user = sim.user_ids[ACCOUNT]
    sim.state.faults.script(ScriptedFault(FaultKind.E503, 10_000, user, endpoint))


def roll_back(sim: Simulation, ledger: Path) -> None:
    """`bulkrt rollback` and the run of its undo job on the same ledger."""
    plan = plan_rollback(ledger)
    rows = [Row(r.campaign, r.account, r.tweet_id, Action.UNDO) for r in plan.undo]
    run = sim.run(job_items(rows, "undo.csv"), ledger)
    assert not run.crashed and not run.stats.count(Status.ERROR)


# -- the journal's ending taken although the pair changed after it ---------------------------


def test_a_retweet_a_rollback_took_back_is_recorded_made_on_an_older_backup(
    tmp_path: Path,
) -> None:
    """C retweets Tweet 300; C is rolled back (the undo run writes ``undone`` under the key of
    ``C-rollback``); the ledger is put back from a backup taken before the campaign, beside
    the newer journal, and C's job is run again. The journal's ``made`` for C's key is taken as
    the item's end although the rollback's ``undone`` followed it: the item is recorded ``ok``,
    ``retweeted: true``, with no request, while the account holds no retweet; the run ends
    with no error (exit 0: "every account is in the state the job asks for"), and `status`
    counts the retweet. With the whole ledger the same run warns that a rollback undid it and
    exits 1; before the rule the retweet was sent and made again. Either would be true; this
    is not."""
    sim, retweets = world()
    ledger = tmp_path / "c.jsonl"
    sim.run(job(R), ledger)
    roll_back(sim, ledger)
    assert retweets == set()
    ledger.write_bytes(b"")  # the backup taken before the campaign, beside the newer journal
    run = sim.run(job(R), ledger)
    assert not run.crashed and not run.stats.count(Status.ERROR)  # exit 0
    line = last_word(ledger)
    assert line.retweeted == (TWEET in retweets), (line, retweets)


async def test_cli_rerun_of_a_rolled_back_job_on_an_older_backup_exits_0_without_the_retweets(
    make_world: MakeWorld,
) -> None:
    """The same through the real CLI: a job of two retweets, `bulkrt rollback` and its undo
    run, the ledger put back from the backup taken before the job (an empty file), the job run
    again. It exits 0 saying "2 ok ... 0 requests" (nothing tells that the items were recorded
    from the journal), `bulkrt status` counts two ok retweets, and the account holds neither;
    `bulkrt rollback` meanwhile says both are "no longer retweeted". Exit 0 should mean the
    accounts are in the state the job asks for (a whole ledger exits 1 here, with a warning
    that a rollback undid them)."""
    world = await make_world(limit=50, window=1.0)
    job_file = world.job([("acct001", "120", "retweet"), ("acct001", "121", "retweet")])
    assert (await world.run(job_file)).returncode == 0
    undo = world.dir / "undo.csv"
    rollback = [*PYTHON_M_BULKRT, "rollback", str(world.ledger), "--out", str(undo)]
    assert (await run_cli(rollback)).returncode == 0
    assert (await world.run(undo)).returncode == 0
    assert world.retweets("acct001") == set()
    world.ledger.write_bytes(b"")
    again = await world.run(job_file)
    status = await run_cli([*PYTHON_M_BULKRT, "status", str(world.ledger), "--json"])
    ok = json.loads(status.stdout)["by_action"]["retweet"]["ok"]
    held = world.retweets("acct001")
    assert (again.returncode, ok) != (0, 2) or held == {"120", "121"}, (
        again.stdout.decode(),
        held,
    )


def test_a_retweet_another_campaigns_undo_took_back_is_recorded_made_on_an_older_backup(
    tmp_path: Path,
) -> None:
    """Two jobs share a ledger: C retweets Tweet 300, then D's job undoes it. The ledger is put
    back from the backup taken before both and C's job is run again: C's retweet is recorded
    ``ok``, retweeted, from the journal's ``made`` that D's ``undone`` followed; the account
    holds no retweet and the run ends with no error."""
    sim, retweets = world()
    ledger = tmp_path / "c.jsonl"
    sim.run(job(R), ledger)
    sim.run(job(U, campaign="D"), ledger)
    assert retweets == set()
    ledger.write_bytes(b"")
    run = sim.run(job(R), ledger)
    assert not run.crashed and not run.stats.count(Status.ERROR)
    line = last_word(ledger)
    assert line.retweeted == (TWEET in retweets), (line, retweets)


def test_an_undo_whose_replay_failed_is_recorded_undone_from_an_older_run(
    tmp_path: Path,
) -> None:
    """C's job: retweet Tweet 300, then undo it. Run 1: the retweet fails (503s, never
    applied), the undo ends ``ok`` (``undone`` in the journal). The ledger is put back from the
    backup taken before it. Run 2 replays the pair as the rule says: the retweet is sent and
    made (a change of this run), so the undo is sent again, and fails (503s). Run 3, on the
    ledger run 2 left (no backup restored this time): the retweet is finished and skipped, so
    the pair is not "changed in this run", and the undo is recorded ``ok`` from run 1's
    ``undone`` although run 2's retweet came after it. The account keeps the retweet, the job's
    last word on the pair is an undo that the ledger calls done, and the run ends with no error:
    the retweet and its undo did not keep their order."""
    sim, retweets = world()
    ledger = tmp_path / "c.jsonl"
    fail_all(sim, Endpoint.RETWEET)
    first = sim.run(job(R, U), ledger)
    assert [r.status for r in read_ledger(ledger)] == [Status.ERROR, Status.OK]
    assert first.stats.count(Status.ERROR) == 1
    sim.state.faults.scripted.clear()
    ledger.write_bytes(b"")  # the older backup
    fail_all(sim, Endpoint.UNDO)
    second = sim.run(job(R, U), ledger)
    assert second.stats.count(Status.ERROR) == 1  # the undo; the retweet was made
    assert retweets == {TWEET}
    sim.state.faults.scripted.clear()
    third = sim.run(job(R, U), ledger)  # the same command again: resume
    assert not third.crashed and not third.stats.count(Status.ERROR)  # exit 0
    line = last_word(ledger)
    assert line.action is U
    assert retweets == set(), f"the job ends with an undo, the account holds {retweets}"


@pytest.mark.xfail(strict=True, reason="journal lines name no user id (see the module docstring)")
def test_another_users_item_is_recorded_from_the_journal_of_an_account_of_the_same_name(
    tmp_path: Path,
) -> None:
    """Two accounts files with the same names (production and staging: the README's reason to
    check every account's ``user_id``): C's job runs with production's, its retweet is made.
    The ledger is put back from the backup taken before it (empty) and the job is run with
    staging's file, whose acct001 is another user. The journal's lines name no user, so the
    row matches and staging's item is recorded ``ok``, retweeted, under staging's user id,
    with no request: staging's acct001 holds nothing. With the whole ledger the run exits 2
    (another user id for acct001); before the rule the retweet was sent to staging."""
    production, _ = world()
    staging = Simulation(SandboxConfig(users=2, limit=50, window=1.0, seed=99), seed=2)
    assert staging.user_ids[ACCOUNT] != production.user_ids[ACCOUNT]
    ledger = tmp_path / "c.jsonl"
    production.run(job(R), ledger)
    ledger.write_bytes(b"")
    run = staging.run(job(R), ledger)
    assert not run.crashed and not run.stats.count(Status.ERROR)
    (line,) = read_ledger(ledger)
    held = staging.state.retweets[staging.user_ids[ACCOUNT]]
    assert line.user_id == staging.user_ids[ACCOUNT]
    assert line.retweeted == (TWEET in held), (line, held)


# -- this run's undo is a change of the pair too -----------------------------------------------


def test_this_runs_undo_before_a_retweet_recorded_as_made_leaves_the_account_without_it(
    tmp_path: Path,
) -> None:
    """C's job: undo Tweet 300, then retweet it. Run 1: the undo fails (503s), the retweet is
    made (``made`` in the journal). The ledger is put back from the backup taken before it and
    the job is run again: the undo is sent (the journal saw it end nothing) and removes the
    campaign's retweet; the retweet is then recorded ``ok``, ``retweeted: true``, with no
    request, from run 1's ``made`` (only a retweet of this run counts as a change of the pair).
    The account ends without the retweet the job's last row asks for, the ledger says it has
    it, the run ends with no error, and the rollback lists the pair among those whose undo
    "may have removed the account's own retweet"."""
    sim, retweets = world()
    ledger = tmp_path / "c.jsonl"
    fail_all(sim, Endpoint.UNDO)
    sim.run(job(U, R), ledger)
    assert retweets == {TWEET}
    sim.state.faults.scripted.clear()
    ledger.write_bytes(b"")
    run = sim.run(job(U, R), ledger)
    assert not run.crashed and not run.stats.count(Status.ERROR)  # exit 0
    line = last_word(ledger)
    assert (line.action, line.retweeted) == (R, True)
    assert retweets == {TWEET}, "the job ends with a retweet, the account holds none"


@pytest.mark.xfail(
    strict=True, reason="the journal's endings supersede no earlier row (see the module docstring)"
)
def test_an_undo_the_whole_ledger_supersedes_is_sent_on_an_older_backup_and_removes_the_owners(
    tmp_path: Path,
) -> None:
    """C's job: undo Tweet 300, retweet it, undo it. Run 1: the first undo fails (five 503s),
    the retweet is made and the last undo ends ``ok``; then the owner retweets the Tweet. Run
    on the whole ledger, the job sends nothing (the first undo is ``superseded``: a finished
    row of the pair follows it). Run on the backup taken before run 1, beside the journal that
    shows the two later rows ended, the first undo is sent and deletes the owner's retweet
    (the journal's endings of later rows do not supersede it), the retweet is then recorded
    made from the journal (the account holds none) and the last undo recorded undone. The
    README's reason for the rule -- an undo sent again would remove a retweet the owner made
    since -- is what happens."""
    for older_backup in (False, True):
        sim, retweets = world()
        ledger = tmp_path / f"c-{older_backup}.jsonl"
        user = sim.user_ids[ACCOUNT]
        sim.state.faults.script(ScriptedFault(FaultKind.E503, 5, user, Endpoint.UNDO))
        sim.run(job(U, R, U), ledger)
        assert [r.status for r in read_ledger(ledger)] == [Status.ERROR, Status.OK, Status.OK]
        retweets.add(TWEET)  # the owner, after the campaign
        if older_backup:
            ledger.write_bytes(b"")
        sent = len(sim.state.log)
        run = sim.run(job(U, R, U), ledger)
        assert not run.crashed and not run.stats.count(Status.ERROR)
        assert (retweets, len(sim.state.log) - sent) == ({TWEET}, 0), f"{older_backup=}"


# -- what status and the dry run say of such items ---------------------------------------------


def test_status_counts_an_undo_recorded_as_ended_as_a_retweet_of_undecidable_origin(
    tmp_path: Path,
) -> None:
    """C's job retweets Tweet 300 (made: a 200) and undoes it; the ledger is put back from the
    backup taken before it and the job is run again: both items are recorded from the journal.
    The undo's line has ``preexisting: null`` (an undo sent has ``false``), and `bulkrt status`
    reports "1 retweet(s) of undecidable origin" for a ledger whose only retweet the campaign
    made, and that is undone (the rollback finds nothing undecidable)."""
    sim, _ = world()
    ledger = tmp_path / "c.jsonl"
    sim.run(job(R, U), ledger)
    sent = [(r.action, r.preexisting) for r in read_ledger(ledger)]
    assert sent == [(R, False), (U, False)]
    ledger.write_bytes(b"")
    sim.run(job(R, U), ledger)
    assert plan_rollback(ledger).undecided == ()
    shown = CliRunner().invoke(main, ["status", str(ledger)])
    assert shown.exit_code == 0, shown.output
    assert "undecidable origin" not in shown.output, [
        (r.action, r.preexisting, r.http) for r in read_ledger(ledger)
    ]
    as_json = CliRunner().invoke(main, ["status", str(ledger), "--json"])
    assert json.loads(as_json.output)["undecided_origin"] == 0


def test_a_line_recorded_from_the_journal_claims_a_request_sent_by_the_run_that_sent_none(
    tmp_path: Path,
) -> None:
    """C's job retweets Tweet 300 at the start of run 1; the ledger is put back from the backup
    taken before it and the job is run again a virtual minute later: nothing is sent, but the
    line says ``attempts: 1`` and ``sent`` at the resume's time (the README: "when the item's
    last request went out"), so `bulkrt report` draws one request in a run that sent none."""
    sim, _ = world()
    ledger = tmp_path / "c.jsonl"
    sim.run(job(R), ledger)
    (first,) = read_ledger(ledger)
    ledger.write_bytes(b"")
    requests = sim.state.requests
    sim.run(job(R), ledger, gap=60.0)
    assert sim.state.requests == requests  # nothing sent
    (line,) = read_ledger(ledger)
    builder = ReportBuilder()
    builder.add(line)
    assert (builder.requests, line.sent) in {(0, None), (0, first.sent)}, line


@pytest.mark.xfail(strict=True, reason="the dry run does not read the journal")
async def test_dry_run_prices_the_requests_a_run_on_an_older_backup_does_not_send(
    make_world: MakeWorld,
) -> None:
    """A job of four retweets runs to the end; the ledger is put back from the backup taken
    before it. The dry run plans four requests (and their cost, and their time) for the next
    run, which sends none: each item is recorded from the journal. The plan should count what
    the run will send, as it does for the items the ledger holds finished."""
    world = await make_world(limit=50, window=1.0)
    job_file = world.job([("acct001", str(t), "retweet") for t in (120, 121, 122, 123)])
    done = await world.run(job_file)
    assert done.returncode == 0, done.stderr.decode()
    world.ledger.write_bytes(b"")
    dry = await run_cli(world.run_args(job_file, "--dry-run", "--json"))
    assert dry.returncode == 0, dry.stderr.decode()
    planned = json.loads(dry.stdout)
    requests = world.sandbox.state.stats()["requests"]
    again = await world.run(job_file)
    assert again.returncode == 0, again.stderr.decode()
    sent = world.sandbox.state.stats()["requests"] - requests
    assert (planned["requests"], sent) == (sent, sent), planned  # now: planned 4, sent 0


# -- at random ----------------------------------------------------------------------------------

#: seeds of `test_resume_of_an_older_backup_changes_nothing_the_campaign_left` (2 of its first
#: 400 fail, 68 and 368; 3 of the first 2000: 1300 too)
#: the random harnesses' seeds (``BULKRT_SIM_SEEDS`` scales them, as the invariants' own: 50 and
#: 20 in CI; by hand with ``BULKRT_SIM_SEEDS=8000``, 2000 and 800, of which all pass and 798)
RESUME_SEEDS = max(25, int(os.environ.get("BULKRT_SIM_SEEDS", "200")) // 4)


def latest_retweeted(ledger: Path) -> dict[tuple[str, str], bool]:
    """Per (account, Tweet), whether the ledger's latest ``ok`` line on it says retweeted."""
    return {
        (r.account, r.tweet_id): r.retweeted
        for r in read_ledger(ledger)
        if r.status is Status.OK and r.retweeted is not None
    }


def check_resume_seed(seed: int, directory: Path) -> list[str]:
    """`campaign_with_backups` (retweet and undo rows, faults, kills, owners at work), then
    one of its earlier ledger backups put back beside the journal and the same job run again
    to the end (faults and kills still, no owner acting). What breaks: the accounts' retweets
    differ from what the campaign left (the resume repeated finished work), or the ledger's
    latest line on a pair contradicts the platform where the whole ledger's did not."""
    sim, _, ledger, backups, rng, chaos, rows = campaign_with_backups(seed, directory)
    ids = sim.user_ids

    def held() -> set[tuple[str, str]]:
        return {(a, t) for a in ACCOUNTS for t in sim.state.retweets[ids[a]]}

    left = held()
    agreed = {pair for pair, yes in latest_retweeted(ledger).items() if yes == (pair in left)}
    ledger.write_bytes(rng.choice(backups[:-1]))
    sim_until_done(sim, repeated_items(rows, "campaign.csv"), ledger, rng, chaos, damage_ok=False)
    now, said = held(), latest_retweeted(ledger)
    broken = []
    if now != left:
        broken.append(f"retweets gone {sorted(left - now)}, new {sorted(now - left)}")
    wrong = sorted(pair for pair in agreed if pair in said and said[pair] != (pair in now))
    if wrong:
        broken.append(f"the ledger contradicts the platform on {wrong}")
    return broken


def test_resume_of_an_older_backup_changes_nothing_the_campaign_left() -> None:
    """The README: resume never repeats finished work. At random, a resume on an older backup
    sends an undo the whole ledger would not (it ended ``error`` then ``superseded``, or its
    ``undone`` was lost from the journal by a kill while its ledger line was kept), removing
    the campaign's retweet; the job's later retweet is then recorded made from the journal,
    and the account ends without it (seeds 68 and 368 under the rule's first form)."""
    failed = broken_seeds(check_resume_seed, RESUME_SEEDS)
    assert not failed, f"{len(failed)} of {RESUME_SEEDS} seeds: {failed[:5]}"


#: seeds of `test_resume_of_a_rolled_back_campaign_on_an_older_backup_records_what_stands`
#: (291 of the first 300 failed under the rule's first form, none before it; under the narrowed
#: rule 2 of 800 fail, 425 and 608: a kill lost the rollback's ``undone`` from the journal, whose
#: last quarter second a crash may lose, and the backup lost its ledger line, so nothing tells
#: that the pair moved on after the campaign's ``made``)
ROLLBACK_SEEDS = max(10, int(os.environ.get("BULKRT_SIM_SEEDS", "200")) // 10)


def check_rolled_back_seed(seed: int, directory: Path) -> list[str]:
    """`campaign_with_backups`, then rollback and its undo run, then one of the campaign's
    earlier ledger backups put back beside the journal and the campaign's job run again to the
    end. What breaks: a line this resume wrote, the latest ``ok`` one on its pair, says
    retweeted or not against what the platform holds, where the ledger agreed with it before."""
    sim, _, ledger, backups, rng, chaos, rows = campaign_with_backups(seed, directory)
    ids = sim.user_ids
    plan = plan_rollback(ledger)
    if plan.undo:
        undo_rows = [Row(r.campaign, r.account, r.tweet_id, Action.UNDO) for r in plan.undo]
        sim_until_done(sim, job_items(undo_rows, "undo.csv"), ledger, rng, chaos, damage_ok=False)
    held = {(a, t) for a in ACCOUNTS for t in sim.state.retweets[ids[a]]}
    agreed = {pair for pair, yes in latest_retweeted(ledger).items() if yes == (pair in held)}
    backup = rng.choice(backups[:-1])
    ledger.write_bytes(backup)
    kept = {r.run for r in read_ledger(ledger)} if backup else set()
    sim_until_done(sim, repeated_items(rows, "campaign.csv"), ledger, rng, chaos, damage_ok=False)
    now = {(a, t) for a in ACCOUNTS for t in sim.state.retweets[ids[a]]}
    latest = {}
    for r in read_ledger(ledger):
        if r.status is Status.OK and r.retweeted is not None:
            latest[r.account, r.tweet_id] = r
    wrong = sorted(
        pair
        for pair, line in latest.items()
        if pair in agreed and line.run not in kept and line.retweeted != (pair in now)
    )
    return [f"the resume's lines contradict the platform on {wrong}"] if wrong else []


def test_resume_of_a_rolled_back_campaign_on_an_older_backup_records_what_stands() -> None:
    """`test_a_retweet_a_rollback_took_back_is_recorded_made_on_an_older_backup` at random:
    nearly every seed records retweets ``ok`` that the rollback took back."""
    failed = broken_seeds(check_rolled_back_seed, ROLLBACK_SEEDS)
    assert not failed, f"{len(failed)} of {ROLLBACK_SEEDS} seeds: {failed[:3]}"
