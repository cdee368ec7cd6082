"""Two campaigns on the same pairs, rolled back one at a time (``--campaign``), in virtual time:
an older ledger backup (or the current ledger) beside the journal, the owners retweeting between
the rollbacks, ``--account`` selections checked against the whole, and a last rollback that must
find nothing left (rollback's rule for the journal's last ``undone`` of a pair the ledger lacks).

Run more seeds by hand: ``BULKRT_SIM_SEEDS=16000 .venv/bin/pytest -q tests/test_two_campaigns.py``.
With 200 seeds (``BULKRT_SIM_SEEDS=3200``) the killed-tail case meets the known gap in 1 or 2
of them: an undo row applied in the last, killed run, its outcome lost with it (undo attempts
leave no ``sent``), and the owner retweeting since; the rollback takes that retweet for the
campaign's."""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

import pytest

from bulkrt.core.items import Action
from bulkrt.errors import RollbackError
from bulkrt.jobs.rows import Row
from bulkrt.ledger.undo import plan_rollback
from tests.test_invariants import (
    ACCOUNTS,
    TWEETS,
    campaign_with_backups,
    job_items,
    owner_moves,
    owners_verdict,
    repeated_items,
    sim_until_done,
    undecided_pairs,
)

#: seeds per test: 12 in CI (six tests share out the suite's two cores); ``BULKRT_SIM_SEEDS=16000``
#: runs 1000 each
SEEDS = max(8, int(os.environ.get("BULKRT_SIM_SEEDS", "200")) // 16)
CAMPAIGNS = ("alpha", "beta")


def two_campaign_rows(rng: random.Random) -> list[Row]:
    """Retweet and undo rows of two campaigns on the same four Tweets of every account."""
    rows = [
        Row(c, a, rng.choice(TWEETS[:4]), rng.choice((Action.RETWEET, Action.UNDO)))
        for c in CAMPAIGNS
        for a in ACCOUNTS
        for _ in range(rng.randint(2, 6))
    ]
    rng.shuffle(rows)
    return rows


def check_seed(  # noqa: C901 (one scenario, read top to bottom)
    seed: int, directory: Path, *, restore: bool, order: tuple[str, ...], tail: bool = False
) -> list[str]:
    """The two campaigns (one job, faults, kills, owners at work), keeping a copy of the ledger
    after each run; with ``restore`` one of those copies is put back (the journal stays); then
    a rollback of each campaign of ``order`` in turn (``--campaign``) and its undo run, the
    owners retweeting between them; then a rollback of everything must find nothing. What
    broke, if anything."""
    found = campaign_with_backups(seed, directory, two_campaign_rows, "two")
    sim, book, ledger, backups, rng, chaos, rows = found
    moves = owner_moves(sim, book, rng)
    if tail:
        # more rows of both campaigns, killed mid-run and not resumed: the current ledger lost
        # its last lines, the journal (ahead of it) kept theirs
        more = repeated_items(rows + two_campaign_rows(rng), "two.csv")
        sim.run(more, ledger, crash_after=rng.uniform(0.5, 6.0), beside=moves)
    owners = book.held_by("owner")
    if restore:
        ledger.write_bytes(rng.choice(backups[:-1]))
    undecided = undecided_pairs(ledger)
    broken: list[str] = []
    state = sim.state
    for campaign in order:
        try:
            plan = plan_rollback(ledger, campaigns=[campaign])
        except RollbackError as exc:
            if "no lines of campaign" in str(exc):
                continue  # the campaign left no trace anywhere (a backup before its first run)
            broken.append(f"rollback --campaign {campaign} refused: {exc}")
            continue
        whole = {(row.account, row.tweet_id) for row in plan.undo}
        by_account: set[tuple[str, str]] = set()
        for account in {a for a, _ in whole}:
            by_account |= {
                (row.account, row.tweet_id)
                for row in plan_rollback(ledger, campaigns=[campaign], accounts=[account]).undo
            }
        if by_account != whole:
            broken.append(f"{campaign}: --account selections differ: {by_account ^ whole}")
        undecided |= {(row.account, row.tweet_id) for row in plan.undecided}
        if plan.undo:
            undo_rows = [Row(r.campaign, r.account, r.tweet_id, Action.UNDO) for r in plan.undo]
            sim_until_done(sim, job_items(undo_rows, f"undo-{campaign}.csv"), ledger, rng, chaos,
                           damage_ok=False)  # fmt: skip
        # the owners retweet a few Tweets not retweeted now, between the rollbacks
        for _ in range(3):
            uid = sim.user_ids[rng.choice(ACCOUNTS)]
            tweet = rng.choice(TWEETS)
            if tweet not in state.retweets[uid]:
                book.owner(state.retweets[uid], state.retweets[uid].add, tweet)
                owners.add((uid, tweet))
    try:
        left = plan_rollback(ledger)
        if left.undo:
            broken.append(
                f"a last rollback finds more: {[(r.account, r.tweet_id) for r in left.undo]}"
            )
    except RollbackError as exc:
        broken.append(f"a last rollback refused: {exc}")
    broken += owners_verdict(sim, book, owners, undecided, chaos)
    return broken


def failing(
    *, restore: bool, order: tuple[str, ...], seeds: range, tail: bool = False
) -> list[tuple[int, list[str]]]:
    failed = []
    shm = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(dir=shm, prefix="bulkrt-two-campaigns-") as scratch:
        for seed in seeds:
            directory = Path(scratch) / str(seed)
            directory.mkdir()
            broken = check_seed(seed, directory, restore=restore, order=order, tail=tail)
            if broken:
                failed.append((seed, broken))
    return failed


@pytest.mark.parametrize("order", [CAMPAIGNS, CAMPAIGNS[::-1]])
@pytest.mark.parametrize("restore", [True, False], ids=["older-backup", "current"])
def test_two_campaigns_rolled_back_one_at_a_time(restore: bool, order: tuple[str, ...]) -> None:
    failed = failing(restore=restore, order=order, seeds=range(SEEDS))
    assert not failed, f"{len(failed)} of {SEEDS} seeds: {failed[:5]}"


@pytest.mark.parametrize("order", [CAMPAIGNS, CAMPAIGNS[::-1]])
def test_two_campaigns_rolled_back_after_a_kill_lost_the_ledgers_tail(
    order: tuple[str, ...],
) -> None:
    failed = failing(restore=False, order=order, seeds=range(SEEDS), tail=True)
    assert not failed, f"{len(failed)} of {SEEDS} seeds: {failed[:5]}"


# -- C1: a selected campaign's retweet, known from the journal after its own undo, is taken for
# -- another campaign's -----------------------------------------------------------------------


def test_c1_rollback_of_a_campaign_undoes_its_retweet_made_after_its_own_undo_of_anothers(
    tmp_path: Path,
) -> None:
    """beta retweets Tweet 300, undoes it, alpha retweets it (a 2xx: alpha's), beta's second undo
    row undoes alpha's, and the ledger is backed up; beta's second retweet row makes a retweet
    of its own (``made`` in the journal, after beta's ``undone``). The backup is put back. The
    journal says beta's retweet stands, but ``rollback --campaign beta`` counts it as 'retweeted
    again by another campaign' (alpha's retweet, ended by beta's own undo, still names alpha),
    and ``--campaign alpha`` calls it no longer retweeted: no selection undoes it; only a
    rollback of every campaign does, under alpha-rollback."""
    from bulkrt.sandbox.config import SandboxConfig
    from bulkrt.simulation.harness import Simulation

    sim = Simulation(SandboxConfig(users=2, limit=50, window=1.0), seed=1)
    retweets = sim.state.retweets[sim.user_ids["acct001"]]
    rows = [Row(c, "acct001", "300", a) for c, a in [
        ("beta", Action.RETWEET), ("beta", Action.UNDO), ("alpha", Action.RETWEET),
        ("beta", Action.UNDO), ("beta", Action.RETWEET)]]  # fmt: skip
    items = repeated_items(rows, "two.csv")
    ledger = tmp_path / "two.jsonl"
    for n in range(1, 5):
        sim.run(items[:n], ledger)  # one row at a time, in order
    backup = ledger.read_bytes()
    sim.run(items, ledger)
    assert retweets == {"300"}  # beta's (its second retweet row, a 2xx)
    ledger.write_bytes(backup)
    beta = plan_rollback(ledger, campaigns=["beta"])
    alpha = plan_rollback(ledger, campaigns=["alpha"])
    selected = [(r.account, r.tweet_id) for p in (alpha, beta) for r in p.undo]
    assert selected == [("acct001", "300")]  # seen: [] (beta: 'other campaigns: 1')
    assert beta.other_campaigns == 0
