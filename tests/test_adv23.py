"""adv23: an independent adversarial pass over the last session's fixes and the multi-machine
mode's promises. Each test here FAILED when it was written (the findings of
/work/notes/adv23-findings.md, by their ids): it says what an operator would see, against
what the README and docs/fleet.md promise. Nothing here is timed."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

from bulkrt.shell.accounts_file import recover_write_back
from tests.test_run import ACCOUNTS, PYTHON_M_BULKRT, MakeWorld, rows, run_cli


def _oauth2_file(path: Path, *, refresh: str, access: str, expires: str | None) -> None:
    """An accounts file with one OAuth 2.0 account, ``beta``."""
    document = {
        "accounts": {
            "beta": {
                "user_id": "2244994945",
                "oauth2": {
                    "client_id": "cid-beta",
                    "client_secret": None,
                    "access_token": access,
                    "refresh_token": refresh,
                    "expires_at": expires,
                },
            }
        }
    }
    path.write_text(json.dumps(document, indent=2))
    path.chmod(0o600)


def test_a1_an_old_leftover_never_replaces_tokens_the_operator_wrote_without_an_expiry(
    tmp_path: Path,
) -> None:
    """A1. A write-back killed long ago left ``.accounts.json.<random>.tmp`` with the tokens of
    then (expired since). The operator has authorised the account again since and written the
    new tokens into the file with ``expires_at`` null (the loader accepts null or absent). The
    next run's recovery must keep the operator's new tokens: the leftover holds nothing newer.
    Today it takes any leftover expiry as later than "no expiry" and writes the old, spent tokens
    over the operator's new ones (the run then says: authorise again)."""
    accounts = tmp_path / "accounts.json"
    _oauth2_file(
        accounts, refresh="rt-old-0123456789", access="at-old-0123456789",
        expires="2026-01-01T00:00:00+00:00",
    )  # fmt: skip
    leftover = tmp_path / ".accounts.json.k1ll3d.tmp"
    shutil.copy(accounts, leftover)
    # the operator authorises the account again and pastes the new tokens, no expiry
    _oauth2_file(accounts, refresh="rt-new-0123456789", access="at-new-0123456789", expires=None)
    recover_write_back(accounts)
    written = json.loads(accounts.read_text())["accounts"]["beta"]["oauth2"]
    assert (written["refresh_token"], written["access_token"]) == (
        "rt-new-0123456789",
        "at-new-0123456789",
    ), "the operator's new tokens were replaced by an old leftover's"


async def test_a2_an_archive_in_capitals_beside_a_missing_ledger_is_refused(
    make_world: MakeWorld,
) -> None:
    """A2. ``gzip`` then a rename to ``L.jsonl.GZ`` and ``L.jsonl.sent.GZ`` (capital suffixes,
    as a Windows tool or a copy through a case-folding share leaves them): a run on the missing
    ``L.jsonl`` must be refused as for ``L.jsonl.gz`` (the last session made ``.GZ`` count as
    compressed for a new ``--ledger`` name). Today the dry run plans every item again (exit 0),
    and the run would send them all and take the campaign's retweets for the owners'."""
    world = await make_world()
    job = world.job(rows(ACCOUNTS[:2], 2))
    done = await world.run(job)
    assert done.returncode == 0, done.stderr.decode()
    for path in (world.ledger, world.ledger.with_name("ledger.jsonl.sent")):
        path.with_name(path.name + ".GZ").write_bytes(gzip.compress(path.read_bytes()))
        path.unlink()
    answer = await run_cli(world.run_args(job, "--dry-run"))
    err = answer.stderr.decode()
    assert answer.returncode == 2, (answer.stdout.decode(), err)
    assert "ledger.jsonl.GZ" in err


async def test_a2_status_names_a_capital_archive_beside_an_empty_ledger(
    make_world: MakeWorld,
) -> None:
    """A2 (status). ``status`` on an empty ledger beside ``L.jsonl.GZ`` must name the archive as
    it does beside ``L.jsonl.gz``; today it counts nothing and exits 0."""
    world = await make_world()
    job = world.job(rows(ACCOUNTS[:1], 1))
    done = await world.run(job)
    assert done.returncode == 0, done.stderr.decode()
    archive = world.ledger.with_name("ledger.jsonl.GZ")
    archive.write_bytes(gzip.compress(world.ledger.read_bytes()))
    world.ledger.write_bytes(b"")
    answer = await run_cli([*PYTHON_M_BULKRT, "status", str(world.ledger)])
    assert answer.returncode == 2, answer.stdout.decode()
    assert "ledger.jsonl.GZ" in answer.stderr.decode()
