"""An accounts file that cannot be written (a read-only or full filesystem, a directory this user
cannot write) and the leftovers of interrupted write-backs: OAuth 2.0 accounts are refused at
start when their rotated tokens could not be written back; a store that fails mid-run stops the
run as a ledger that cannot be written does (exit 74, every finished item in the ledger, rotated
tokens saved where the next run adopts them); leftovers are adopted account by account.

The unwritable directory is real: a tmpfs mounted read-only (or filled) when the tests run as
root, a directory without write permission otherwise."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import anyio
import pytest

from bulkrt.core.credential_refresh import RefreshReport, RefreshVerdict
from bulkrt.errors import AccountsError
from bulkrt.ledger.writer import LedgerWriter
from bulkrt.shell.accounts import load_accounts
from bulkrt.shell.accounts_file import (
    fingerprint,
    iso,
    read_document,
    recover_write_back,
    set_mark,
)
from bulkrt.shell.client import Exchange
from tests.test_dispatcher import FakeSender, dispatcher, unauthorized
from tests.test_dispatcher import items as dispatcher_items
from tests.test_run import MakeWorld, World, eventually, fork_cli, rows, run_cli

#: the sandbox's OAuth 2.0 accounts (the others hold OAuth 1.0a credentials)
OAUTH2 = ["acct002", "acct004", "acct006"]
ROOT = os.geteuid() == 0


@dataclass
class SecretsDir:
    """A directory that can be made unwritable for real: a tmpfs remounted read-only as root,
    a directory without write permission otherwise."""

    path: Path
    mounted: bool

    def read_only(self) -> None:
        if self.mounted:
            subprocess.run(["mount", "-o", "remount,ro", str(self.path)], check=True)
        else:
            self.path.chmod(0o555)

    def writable(self) -> None:
        if self.mounted:
            subprocess.run(["mount", "-o", "remount,rw", str(self.path)], check=True)
        else:
            self.path.chmod(0o755)


def _mount_tmpfs(path: Path, size: str) -> bool:
    """Mount a tmpfs of ``size`` on ``path``; False where mounting is not permitted."""
    if not ROOT or shutil.which("mount") is None:
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


@pytest.fixture
def secrets_dir(tmp_path: Path) -> Iterator[SecretsDir]:
    """A directory for the accounts file that the test can make read-only."""
    path = tmp_path / "secrets"
    path.mkdir()
    mounted = _mount_tmpfs(path, "1m")
    if ROOT and not mounted:
        pytest.skip("running as root without mount: no directory can be made unwritable")
    try:
        yield SecretsDir(path, mounted)
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], check=False)
        else:
            path.chmod(0o755)


def move_accounts(world: World, directory: Path) -> Path:
    """Move the world's accounts file into ``directory``; returns its new path."""
    moved = directory / "accounts.json"
    moved.write_bytes(world.accounts.read_bytes())
    moved.chmod(0o600)
    world.accounts.unlink()
    return moved


def args_with(world: World, job: Path, accounts: Path) -> list[str]:
    args = world.run_args(job)
    args[args.index("--accounts") + 1] = str(accounts)
    return args


def ok_retweets(world: World) -> dict[str, set[str]]:
    """Per account, the Tweets the ledger says were retweeted (status ok)."""
    done: dict[str, set[str]] = {}
    for line in world.lines():
        if line["status"] == "ok":
            done.setdefault(line["account"], set()).add(line["tweet_id"])
    return done


def sandbox_retweets(world: World, accounts: list[str]) -> dict[str, set[str]]:
    return {a: world.retweets(a) for a in accounts if world.retweets(a)}


def rescued_files(directory: Path) -> list[Path]:
    """The files of rotated tokens a run saved in ``directory`` (its accounts file was full)."""
    return sorted(directory.glob("accounts.json.rescued-*.json"))


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


def oauth2_of(path: Path, account: str) -> dict[str, str]:
    entry: dict[str, str] = json.loads(path.read_text())["accounts"][account]["oauth2"]
    return entry


class TestUnwritableAtStart:
    async def test_oauth2_accounts_in_a_read_only_directory_are_refused_before_sending(
        self, make_world: MakeWorld, secrets_dir: SecretsDir
    ) -> None:
        """The accounts file sits in a directory that cannot be written: a job using OAuth 2.0
        accounts exits 2 before sending, naming the file, its lock and why; no ledger is made.
        A job of OAuth 1.0a accounts only runs from the same file."""
        world = await make_world()
        accounts = move_accounts(world, secrets_dir.path)
        secrets_dir.read_only()
        done = await run_cli(args_with(world, world.job(rows(["acct001", "acct002"], 3)), accounts))
        err = done.stderr.decode()
        assert done.returncode == 2, err[-2000:]
        assert str(accounts) in err and "accounts.json.lock" in err and "acct002" in err
        assert "Traceback" not in err
        assert world.sandbox.state.stats()["requests"] == 0
        assert not world.ledger.exists()
        oauth1 = world.job(rows(["acct001", "acct003"], 2), name="oauth1.csv")
        again = await run_cli(args_with(world, oauth1, accounts))
        assert again.returncode == 0, again.stderr.decode()[-2000:]
        assert ok_retweets(world) == {"acct001": {"100", "101"}, "acct003": {"100", "101"}}


class TestUnwritableMidRun:
    async def test_a_directory_turning_read_only_stops_the_run_with_every_item_recorded(
        self, make_world: MakeWorld, secrets_dir: SecretsDir
    ) -> None:
        """The accounts file's directory turns read-only while a run sends: at the first OAuth
        2.0 refresh the run stops with exit 74, no traceback, the resume command, and every
        retweet the API made has its ok line in the ledger; once the directory can be written,
        the same command finishes every item."""
        # tokens live 10 s: the first refresh comes about 5 s in, the job takes about 8 s
        world = await make_world(token_ttl=10, limit=5, window=2.0)
        accounts = move_accounts(world, secrets_dir.path)
        job = world.job(rows(["acct001", "acct002"], 20))
        args = args_with(world, job, accounts)
        async with fork_cli(args) as child:
            await eventually(lambda: len(world.lines()) >= 2)
            secrets_dir.read_only()
            code = await child.wait()
        err = child.stderr().decode()
        assert code == 74, err[-3000:]
        assert "Traceback" not in err and "cannot write" in err and "accounts.json" in err
        assert "resume with the same command" in err
        assert len(world.lines()) < 40  # stopped before the end
        both = ["acct001", "acct002"]
        assert ok_retweets(world) == sandbox_retweets(world, both)
        secrets_dir.writable()
        again = await run_cli(args)
        assert again.returncode == 0, again.stderr.decode()[-3000:]
        expected = {str(100 + n) for n in range(20)}
        assert ok_retweets(world) == {"acct001": expected, "acct002": expected}

    async def test_a_full_filesystem_at_the_write_back_saves_the_rotated_tokens_elsewhere(
        self, make_world: MakeWorld, tmp_path: Path
    ) -> None:
        """The accounts file's filesystem has room for the refresh mark but not for the
        write-back: the refresh is answered (its refresh token rotated), the write-back fails
        with ENOSPC, the rotated tokens are saved beside the ledger, the run exits 74 naming
        that file; after space is freed, the same command adopts them and finishes with the
        rotated refresh token (a lost one would be refused by the API)."""
        full = tmp_path / "full"
        full.mkdir()
        if not _mount_tmpfs(full, "64k"):
            pytest.skip("needs a tmpfs of its own (root with mount) to fill")
        try:
            world = await make_world(token_ttl=2)  # stale at start: refreshed at once
            accounts = move_accounts(world, full)
            (full / "accounts.json.lock").touch()
            fill = full / "fill"
            free = os.statvfs(full).f_bavail * os.statvfs(full).f_frsize
            fill.write_bytes(b"\0" * (free - os.statvfs(full).f_frsize))  # one page left
            before = oauth2_of(accounts, "acct002")
            job = world.job(rows(["acct001", "acct002"], 3))
            args = args_with(world, job, accounts)
            done = await run_cli(args)
            err = done.stderr.decode()
            assert done.returncode == 74, err[-3000:]
            assert "Traceback" not in err and "No space left on device" in err
            assert world.sandbox.state.stats()["refreshes"] == 1
            rescued = rescued_files(tmp_path)
            assert len(rescued) == 1 and str(rescued[0]) in err
            assert oauth2_of(accounts, "acct002") == before  # the file could not take them
            assert ok_retweets(world) == sandbox_retweets(world, ["acct001", "acct002"])
            fill.unlink()
            again = await run_cli(args)
            assert again.returncode == 0, again.stderr.decode()[-3000:]
            assert f"adopted {rescued[0]}" in again.stderr.decode()
            assert rescued_files(tmp_path) == []
            assert world.retweets("acct002") == {"100", "101", "102"}
            assert oauth2_of(accounts, "acct002")["refresh_token"] != before["refresh_token"]
        finally:
            await anyio.run_process(["umount", "-l", str(full)], check=False)


_KILL_AT_RENAME = """
import os, re, signal, sys

def _hook(event, args):
    name = os.path.basename(str(args[0])) if event == "os.rename" else ""
    if re.fullmatch(r"[.]accounts[.]json[.][^.]+[.]tmp", name):
        os.kill(os.getpid(), signal.SIGKILL)

sys.addaudithook(_hook)
"""


def _stamp(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class TestInterruptedWriteBack:
    def test_leftovers_are_adopted_account_by_account_by_the_newest_tokens(
        self, tmp_path: Path
    ) -> None:
        """A leftover written before the file (another run rotated acct004 after) holds the
        newer acct002 and an older acct004: the file takes acct002's tokens from it and keeps
        its own acct004; no whole-file `mv` is suggested, and the used leftover is removed."""
        accounts = tmp_path / "accounts.json"
        old = {"access_token": "at-2-old", "refresh_token": "rt-2-old", "expires_at": _stamp(1e9)}
        new = {"access_token": "at-2-new", "refresh_token": "rt-2-new", "expires_at": _stamp(2e9)}
        old4 = {"access_token": "at-4-old", "refresh_token": "rt-4-old", "expires_at": _stamp(1e9)}
        new4 = {"access_token": "at-4-new", "refresh_token": "rt-4-new", "expires_at": _stamp(2e9)}

        def document(two: dict[str, str], four: dict[str, str]) -> str:
            return json.dumps(
                {
                    "accounts": {
                        name: {"user_id": uid, "oauth2": {"client_id": "c", **tokens}}
                        for name, uid, tokens in (("acct002", "2", two), ("acct004", "4", four))
                    }
                }
            )

        leftover = tmp_path / ".accounts.json.kill1234.tmp"
        leftover.write_text(document(new, old4))
        os.utime(leftover, (1_000, 1_000))  # older than the file
        accounts.write_text(document(old, new4))
        accounts.chmod(0o600)
        notes = recover_write_back(accounts)
        assert not any("mv " in note for note in notes)
        assert oauth2_of(accounts, "acct002") == {"client_id": "c", **new}
        assert oauth2_of(accounts, "acct004") == {"client_id": "c", **new4}
        assert not leftover.exists()

    def test_rotated_tokens_saved_elsewhere_go_only_to_the_same_user(self, tmp_path: Path) -> None:
        """Files of rotated tokens saved beside a ledger are adopted by the accounts file's entry
        of the same user only: one saved for another user of the same account name (another
        project's accounts file of the same name) is left alone."""
        accounts = tmp_path / "secrets" / "accounts.json"
        accounts.parent.mkdir()
        old = {"client_id": "c", "access_token": "at-old", "refresh_token": "rt-old",
               "expires_at": _stamp(1e9)}  # fmt: skip
        accounts.write_text(json.dumps({"accounts": {"acct002": {"user_id": "2", "oauth2": old}}}))
        ledgers = tmp_path / "ledgers"
        ledgers.mkdir()
        newer = {"access_token": "at-new", "refresh_token": "rt-new", "expires_at": _stamp(2e9)}

        def rescued(name: str, user_id: str) -> Path:
            path = ledgers / f"accounts.json.rescued-{name}.json"
            entry = {"user_id": user_id, "oauth2": newer}
            path.write_text(json.dumps({"rescued_from": "/elsewhere/accounts.json",
                                        "accounts": {"acct002": entry}}))  # fmt: skip
            return path

        other = rescued("other", "999")
        recover_write_back(accounts, rescue_dirs=[ledgers])
        assert oauth2_of(accounts, "acct002") == old and other.exists()
        mine = rescued("mine", "2")
        notes = recover_write_back(accounts, rescue_dirs=[ledgers])
        assert oauth2_of(accounts, "acct002") == {"client_id": "c", **newer}
        assert not mine.exists() and other.exists()
        assert any(f"adopted {mine}" in note for note in notes)

    def test_an_old_leftover_never_replaces_tokens_the_operator_wrote_without_an_expiry(
        self, tmp_path: Path
    ) -> None:
        """adv23 A1. A write-back killed long ago left ``.accounts.json.<random>.tmp`` with the
        tokens of then (expired since). The operator has authorised the account again since and
        written the new tokens into the file with ``expires_at`` null (the loader accepts null
        or absent). The next run's recovery keeps the operator's tokens and the leftover, and
        says why it cannot tell which are newer (it took any leftover expiry as later than "no
        expiry" and wrote the old, spent tokens over the new ones)."""
        accounts = tmp_path / "accounts.json"
        _oauth2_file(accounts, refresh="rt-old-0123456789", access="at-old-0123456789",
                     expires="2026-01-01T00:00:00+00:00")  # fmt: skip
        leftover = tmp_path / ".accounts.json.k1ll3d.tmp"
        shutil.copy(accounts, leftover)
        # the operator authorises the account again and pastes the new tokens, no expiry
        _oauth2_file(accounts, refresh="rt-new-0123456789", access="at-new-0123456789",
                     expires=None)  # fmt: skip
        notes = recover_write_back(accounts)
        written = oauth2_of(accounts, "beta")
        assert (written["refresh_token"], written["access_token"]) == (
            "rt-new-0123456789",
            "at-new-0123456789",
        ), "the operator's new tokens were replaced by an old leftover's"
        assert leftover.exists()
        assert any(str(leftover) in note and "not adopted" in note for note in notes), notes

    def test_a_leftover_of_a_marked_refresh_is_adopted_though_the_file_was_edited_since(
        self, tmp_path: Path
    ) -> None:
        """Tokens without an expiry; a run marks beta's refresh in flight, gets the answer and
        is killed before the rename; the operator then edits the file (adds an account). The
        file's time tells nothing, so without the mark the leftover is kept and named; with the
        mark, whose refresh token the file still holds, the leftover is that refresh's answer
        and is adopted (the file's refresh token is spent)."""
        accounts = tmp_path / "accounts.json"
        _oauth2_file(accounts, refresh="rt-spent-0123456789", access="at-old-0123456789",
                     expires=None)  # fmt: skip
        document = json.loads(accounts.read_text())
        rotated = json.loads(json.dumps(document))
        rotated["accounts"]["beta"]["oauth2"].update(
            refresh_token="rt-rotated-0123456789", access_token="at-rotated-0123456789"
        )
        leftover = tmp_path / ".accounts.json.k1ll3d.tmp"
        leftover.write_text(json.dumps(rotated))
        hour_ago = datetime.now(UTC) - timedelta(hours=1)
        os.utime(leftover, (hour_ago.timestamp(), hour_ago.timestamp()))
        document["accounts"]["gamma"] = {"user_id": "7", "oauth1": {}}
        accounts.write_text(json.dumps(document))  # edited after the crash
        notes = recover_write_back(accounts)
        assert oauth2_of(accounts, "beta")["refresh_token"] == "rt-spent-0123456789"
        assert leftover.exists() and any("not adopted" in note for note in notes), notes
        mark = {"token": fingerprint("rt-spent-0123456789"),
                "since": iso(hour_ago - timedelta(seconds=5)), "pid": 1}  # fmt: skip
        set_mark(accounts, "beta", mark)
        notes = recover_write_back(accounts)
        assert oauth2_of(accounts, "beta")["refresh_token"] == "rt-rotated-0123456789"
        assert not leftover.exists() and any("adopted" in note for note in notes), notes
        assert "gamma" in json.loads(accounts.read_text())["accounts"]

    def test_a_leftover_without_an_expiry_written_after_the_file_is_adopted(
        self, tmp_path: Path
    ) -> None:
        """A token endpoint may answer without ``expires_in``: the write-back then writes
        ``expires_at`` null. Killed before its rename, its leftover is newer than a file not
        written since (it was taken as older than any expiry and never adopted)."""
        accounts = tmp_path / "accounts.json"
        _oauth2_file(accounts, refresh="rt-spent-0123456789", access="at-old-0123456789",
                     expires="2026-01-01T00:00:00+00:00")  # fmt: skip
        hour_ago = datetime.now(UTC) - timedelta(hours=1)
        os.utime(accounts, (hour_ago.timestamp(), hour_ago.timestamp()))
        leftover = tmp_path / ".accounts.json.k1ll3d.tmp"
        _oauth2_file(leftover, refresh="rt-rotated-0123456789", access="at-rotated-0123456789",
                     expires=None)  # fmt: skip
        recover_write_back(accounts)
        assert oauth2_of(accounts, "beta")["refresh_token"] == "rt-rotated-0123456789"
        assert oauth2_of(accounts, "beta")["expires_at"] is None
        assert not leftover.exists()

    async def test_a_run_sharing_the_file_adopts_what_a_killed_write_back_left(
        self, make_world: MakeWorld, tmp_path: Path
    ) -> None:
        """Run B is sending when run A, on the same accounts file, is killed between writing
        its rotated acct002 tokens and the rename: B's own refresh of acct002 (after a 401, its
        access token revoked) takes them from the leftover (no "authorise again"), every item of
        B ends ok, and the file then holds tokens that work for a third run.

        B is held (SIGSTOP) from its first answers until A has been killed and B's token revoked,
        so B refreshes after A whatever the machine's load, and has acct002's items left to send:
        it cannot finish them before its second 2-second window."""
        world = await make_world(limit=5, window=2.0)  # tokens live 2 h: B refreshes on the 401
        job_b = world.job(rows(["acct002", "acct004"], 8), name="b.csv")
        b_tokens = json.loads(world.accounts.read_text())["accounts"]["acct002"]["oauth2"]
        async with fork_cli(world.run_args(job_b)) as run_b:
            await eventually(lambda: len(world.lines()) >= 2)  # B has read the accounts file
            run_b.send_signal(signal.SIGSTOP)
            assert len(world.retweets("acct002")) < 8  # B has acct002's items left
            # A finds acct002's token expired (B holds it as fresh) and refreshes at once
            document = json.loads(world.accounts.read_text())
            document["accounts"]["acct002"]["oauth2"]["expires_at"] = _stamp(1e9)
            world.accounts.write_text(json.dumps(document))
            hooks = tmp_path / "hooks"
            hooks.mkdir()
            (hooks / "sitecustomize.py").write_text(_KILL_AT_RENAME)
            env = dict(os.environ, PYTHONPATH=f"{hooks}{os.pathsep}{os.getenv('PYTHONPATH', '')}")
            job_a = world.job(rows(["acct002"], 1, first=900), name="a.csv")
            args_a = world.run_args(job_a)
            args_a[args_a.index("--ledger") + 1] = str(tmp_path / "a.jsonl")
            killed = await anyio.run_process(args_a, check=False, env=env)
            assert killed.returncode == -signal.SIGKILL
            leftovers = [n for n in os.listdir(tmp_path) if n.startswith(".accounts.json.")]
            assert leftovers  # A's write-back left its file
            revoked = world.sandbox.state.auth.tokens.revoke(
                {"token": b_tokens["access_token"], "client_id": b_tokens["client_id"]}, None
            )
            assert revoked.status == 200
            run_b.send_signal(signal.SIGCONT)
            code = await run_b.wait()
        out = run_b.stdout().decode() + run_b.stderr().decode()
        assert code == 0, out[-3000:]
        assert "authorise the app again" not in out
        expected = {str(100 + n) for n in range(8)}
        assert ok_retweets(world) == {"acct002": expected, "acct004": expected}
        third = world.job(rows(["acct002", "acct004"], 2, first=500), name="c.csv")
        done = await world.run(third)
        assert done.returncode == 0, done.stderr.decode()[-3000:]


class TestRefusalMessages:
    async def test_a_refused_refresh_names_another_copy_of_the_accounts_file(
        self, make_world: MakeWorld
    ) -> None:
        """A run on a copy of the accounts file rotated acct002's refresh token: a run on the
        original is refused and its message names another copy of the file as a cause."""
        world = await make_world(token_ttl=2)
        copy = world.dir / "copy.json"
        copy.write_bytes(world.accounts.read_bytes())
        copy.chmod(0o600)
        first = await run_cli(args_with(world, world.job(rows(["acct002"], 1)), copy))
        assert first.returncode == 0, first.stderr.decode()[-2000:]
        done = await world.run(world.job(rows(["acct002"], 1, first=300), name="two.csv"))
        assert done.returncode == 1
        out = done.stdout.decode()
        assert "account acct002" in out and "another copy of this accounts file" in out

    async def test_an_oauth1_refusal_names_the_system_clock(self, make_world: MakeWorld) -> None:
        """The API's clock is 1000 s ahead of this machine's: every OAuth 1.0a account is
        refused (401), and the message names the system clock as a cause."""
        world = await make_world(users=2)
        world.sandbox.clock.advance(1000)  # type: ignore[attr-defined]
        done = await world.run(world.job(rows(["acct001"], 1)))
        assert done.returncode == 1
        out = done.stdout.decode()
        assert "account acct001" in out and re.search(r"clock", out)

    async def test_an_oauth1_refusal_whose_date_is_far_off_puts_the_clock_first(
        self, tmp_path: Path
    ) -> None:
        """A 401 to an OAuth 1.0a account whose answer's Date is 1000 s ahead of this machine's
        clock: the "needs attention" line says the clocks differ by that much and to set the
        system clock; the same 401 with a Date in step keeps the credentials advice first."""
        ahead = format_datetime(datetime.now(UTC) + timedelta(seconds=1000), usegmt=True)
        in_step = format_datetime(datetime.now(UTC), usegmt=True)
        skewed = FakeSender(refreshable=False, answers=[unauthorized_at(ahead)])
        fine = FakeSender(refreshable=False, answers=[unauthorized_at(in_step)])
        for sender in (skewed, fine):
            sender.refreshes = [RefreshReport(RefreshVerdict.UNSUPPORTED)]
        with LedgerWriter(tmp_path / "l.jsonl") as ledger:
            stats = await dispatcher(ledger, {"a": skewed, "b": fine}).run(
                dispatcher_items({"a": 1, "b": 1})
            )
        assert re.search(
            r"clock \(its answer's Date\) is (99\d|1000) s ahead of", stats.reauthorize["a"]
        )
        assert "set the system clock" in stats.reauthorize["a"]
        assert stats.reauthorize["b"].startswith(
            "account b: the API refused its OAuth 1.0a credentials (401); check the consumer key"
        )


def unauthorized_at(date: str) -> Exchange:
    """A 401 whose ``Date`` header is ``date``."""
    answer = unauthorized()
    return Exchange(answer.http, {"date": date}, answer.body, answer.content_type)


class TestGzipAsAccounts:
    @pytest.mark.parametrize(
        ("line", "kind"),
        [
            ('{{"schema":1,"run":"r{n}","key":"k{n:x}","status":"ok"}}', "bulkrt ledger"),
            ('{{"e":"sent","key":"k{n:x}","at":{n}}}', "journal"),
        ],
    )
    @pytest.mark.parametrize("cut", [False, True], ids=["whole", "first 400 bytes"])
    def test_a_gzip_compressed_ledger_or_journal_is_named(
        self, tmp_path: Path, line: str, kind: str, cut: bool
    ) -> None:
        """A gzip-compressed ledger or journal (whole, or cut short by an interrupted copy)
        given as the accounts file is refused naming what it is, not as invalid UTF-8."""
        text = "".join(line.format(n=n * 7919) + "\n" for n in range(500))
        packed = gzip.compress(text.encode())
        path = tmp_path / "L.jsonl.gz"
        path.write_bytes(packed[:400] if cut else packed)
        with pytest.raises(AccountsError) as caught:
            read_document(path)
        message = str(caught.value)
        assert "gzip-compressed" in message and kind in message
        assert "UTF-8" not in message
        with pytest.raises(AccountsError):
            load_accounts(path)
