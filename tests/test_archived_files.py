"""Ledger and journal files the operator archived, moved or damaged (adversarial pass adv21: H1,
J1, N1, N2, N3, O1). Each runs the real CLI and checks what the operator sees (exit code,
message), what the sandbox recorded (nothing sent when a command refuses) and the files left."""

from __future__ import annotations

import bz2
import gzip
import lzma
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from bulkrt.commands.outputs import ledger_refusal
from bulkrt.sandbox import FaultKind
from bulkrt.sandbox.faults import ScriptedFault
from tests.test_operator_mistakes3 import ACCOUNTS, LEDGER_LINE, bulkrt, files
from tests.test_run import (
    EMBEDDED,
    MakeWorld,
    World,
    both_modes,
    eventually,
    fork_cli,
    run_cli,
)

#: a finished campaign of three retweets
CAMPAIGN = [
    ("acct001", "3001", "retweet"),
    ("acct002", "3001", "retweet"),
    ("acct001", "3002", "retweet"),
]

#: how an operator archives a file in place (the tool's own name for the result)
_PACK: dict[str, Callable[[bytes], bytes]] = {
    ".gz": gzip.compress,
    ".xz": lzma.compress,
    ".bz2": bz2.compress,
}


def _archive(path: Path, suffix: str) -> None:
    """Compress ``path`` in place as its tool does: ``PATH<suffix>`` replaces it."""
    path.with_name(path.name + suffix).write_bytes(_PACK[suffix.lower()](path.read_bytes()))
    path.unlink()


def _quoted(stderr: str) -> str:
    """The last command quoted in backticks in ``stderr``."""
    return stderr.rsplit("`", 2)[-2]


async def _finished_campaign(make_world: MakeWorld) -> tuple[World, Path]:
    """A sandbox world whose campaign ran to the end (exit 0), its job, and no lock left."""
    world = await make_world()
    job = world.job(CAMPAIGN)
    first = await world.run(job)
    assert first.returncode == 0, first.stderr.decode()
    world.ledger.with_name("ledger.jsonl.lock").unlink(missing_ok=True)
    return world, job


class TestArchivedLedger:
    """H1: `gzip L.jsonl L.jsonl.sent`, then the original command: no new ledger beside the
    archive, nothing sent, and the message says how to put the files back."""

    @pytest.mark.parametrize(
        ("ledger_suffix", "journal_suffix", "command"),
        [
            (".gz", ".gz", "gzip -d ledger.jsonl.gz ledger.jsonl.sent.gz"),
            (".gz", None, "gzip -d ledger.jsonl.gz"),
            (".xz", ".xz", "xz -d ledger.jsonl.xz ledger.jsonl.sent.xz"),
            (".bz2", ".gz", "gzip -d ledger.jsonl.sent.gz && bzip2 -d ledger.jsonl.bz2"),
            # adv23 A2: capitals, as a Windows tool or a copy through a case-folding share
            # leaves them (were not seen: the run sent every item again); `xz -d` and
            # `bzip2 -d` refuse `.XZ`, `.BZ2`, so such names are renamed first
            (
                ".GZ",
                ".GZ",
                "mv ledger.jsonl.GZ ledger.jsonl.gz && mv ledger.jsonl.sent.GZ "
                "ledger.jsonl.sent.gz && gzip -d ledger.jsonl.gz ledger.jsonl.sent.gz",
            ),
            (
                ".XZ",
                ".xz",
                "mv ledger.jsonl.XZ ledger.jsonl.xz && xz -d ledger.jsonl.xz ledger.jsonl.sent.xz",
            ),
        ],
        ids=["gzip-both", "gzip-ledger", "xz-both", "bzip2-and-gzip", "GZ-both", "XZ-and-xz"],
    )
    async def test_the_same_command_on_an_archived_ledger_is_refused_until_it_is_put_back(
        self,
        make_world: MakeWorld,
        ledger_suffix: str,
        journal_suffix: str | None,
        command: str,
    ) -> None:
        """run, its --dry-run and validate --ledger on the archived ledger's name exit 2 naming
        the archive and the command that restores it, send nothing and create no ledger;
        status, report and rollback name it too; after that command the same run sends
        nothing and exits 0 (before: 3 items resent, recorded `preexisting: true`)."""
        world, job = await _finished_campaign(make_world)
        journal = world.dir / "ledger.jsonl.sent"
        _archive(world.ledger, ledger_suffix)
        if journal_suffix is not None:
            _archive(journal, journal_suffix)
        kept = {path.name: path.read_bytes() for path in world.dir.glob("ledger.jsonl*")}
        sent = world.sandbox.state.requests
        for extra in ((), ("--dry-run",)):
            answer = await world.run(job, *extra)
            err = answer.stderr.decode()
            assert answer.returncode == 2, err
            assert f"{world.ledger}: does not exist, but ledger.jsonl{ledger_suffix}" in err
            assert _quoted(err) == command.replace("ledger.", f"{world.dir}/ledger."), err
        checked = bulkrt("validate", str(job), "--accounts", str(world.accounts), "--ledger",
                         "ledger.jsonl", cwd=world.dir)  # fmt: skip
        assert checked.returncode == 2, checked.stderr
        assert f"does not exist, but ledger.jsonl{ledger_suffix}" in checked.stderr
        for args in (
            ("status", "ledger.jsonl"),
            ("report", "ledger.jsonl", "--html", "page.html"),
            ("rollback", "ledger.jsonl", "--out", "undo.csv"),
        ):
            read = bulkrt(*args, cwd=world.dir)
            assert read.returncode == 2, (args, read.stderr)
            assert f"ledger.jsonl does not exist, but ledger.jsonl{ledger_suffix}" in read.stderr
            assert _quoted(read.stderr) == command, read.stderr
        assert world.sandbox.state.requests == sent
        assert {p.name: p.read_bytes() for p in world.dir.glob("ledger.jsonl*")} == kept
        assert not (world.dir / "page.html").exists() and not (world.dir / "undo.csv").exists()
        await anyio.run_process(command, cwd=world.dir)  # the command as printed, by a shell
        again = await world.run(job)
        assert again.returncode == 0, again.stderr.decode()
        assert world.sandbox.state.requests == sent
        assert [line["preexisting"] for line in world.lines()] == [False] * len(CAMPAIGN)

    @pytest.mark.parametrize("packed", [False, True], ids=["plain-journal", "gzipped-journal"])
    async def test_a_journal_without_its_ledger_is_refused_and_its_advice_settles_the_run(
        self, make_world: MakeWorld, packed: bool
    ) -> None:
        """A journal (plain or gzipped) beside a missing ledger: run and validate exit 2 naming
        the journal and the ledger, nothing sent; following the advice (decompress, `: >
        ledger`) the run resends and the journal records the campaign's retweets as its own,
        so rollback undoes every one (before: all `preexisting: true`, rollback left them)."""
        world, job = await _finished_campaign(make_world)
        world.ledger.unlink()
        journal = world.dir / "ledger.jsonl.sent"
        if packed:
            _archive(journal, ".gz")
        sent = world.sandbox.state.requests
        answer = await world.run(job)
        err = answer.stderr.decode()
        assert answer.returncode == 2, err
        named = "ledger.jsonl.sent.gz" if packed else "ledger.jsonl.sent"
        assert f"--ledger {world.ledger}: does not exist, but its journal {named} is beside" in err
        assert f"`: > {world.ledger}`" in err
        assert (f"`gzip -d {world.ledger}.sent.gz`" in err) is packed
        checked = bulkrt("validate", str(job), "--accounts", str(world.accounts), "--ledger",
                         "ledger.jsonl", cwd=world.dir)  # fmt: skip
        assert checked.returncode == 2 and f"its journal {named}" in checked.stderr
        assert world.sandbox.state.requests == sent and not world.ledger.exists()
        if packed:
            await anyio.run_process(["gzip", "-d", "ledger.jsonl.sent.gz"], cwd=world.dir)
        world.ledger.touch()
        again = await world.run(job)
        assert again.returncode == 0, again.stderr.decode()
        assert [line["preexisting"] for line in world.lines()] == [False] * len(CAMPAIGN)
        rolled = bulkrt("rollback", "ledger.jsonl", "--out", "undo.csv", cwd=world.dir)
        assert rolled.returncode == 0, rolled.stderr
        assert len((world.dir / "undo.csv").read_text().splitlines()) == 1 + len(CAMPAIGN)

    def test_a_new_ledger_with_nothing_beside_it_is_still_created(self, tmp_path: Path) -> None:
        """Only an archive or journal of the same name stops a new ledger: another ledger's
        archive in the directory, or an empty journal left behind, do not (validate exit 0)."""
        files(tmp_path, acc_json=ACCOUNTS, job_csv="account,tweet_id,action\nacct001,20,retweet\n")
        (tmp_path / "other.jsonl.gz").write_bytes(gzip.compress(LEDGER_LINE.encode()))
        (tmp_path / "new.jsonl.sent").touch()
        answer = bulkrt("validate", "job.csv", "--accounts", "acc.json", "--ledger", "new.jsonl",
                        cwd=tmp_path)  # fmt: skip
        assert answer.returncode == 0, answer.stderr
        assert not (tmp_path / "new.jsonl").exists()  # validate reads, never creates


async def _crashed_in_flight(make_world: MakeWorld) -> tuple[World, Path]:
    """A run killed while the sandbox held the answer to its retweet of Tweet 710: the retweet
    exists, the ledger has no line for it, the journal one ``sent`` line (what settles it)."""
    world = await make_world(stall_seconds=60)
    world.sandbox.state.faults.script(
        ScriptedFault(FaultKind.STALL, user_id=world.user_id("acct001"))
    )
    job = world.job([("acct001", "710", "retweet"), ("acct001", "711", "retweet")])
    async with fork_cli(world.run_args(job)) as process:
        await eventually(lambda: "710" in world.retweets("acct001"))
        process.kill()
        await process.wait()
    world.ledger.with_name("ledger.jsonl.lock").unlink(missing_ok=True)
    assert "710" not in {line["tweet_id"] for line in world.lines()}
    return world, job


def _origin_of_710(world: World) -> object:
    return next(line["preexisting"] for line in world.lines() if line["tweet_id"] == "710")


class TestUnreadableJournal:
    """J1: a journal that cannot be read never lets the campaign's retweet pass for the owner's
    silently."""

    @both_modes
    async def test_a_gzipped_journal_is_refused_until_decompressed(
        self, make_world: MakeWorld
    ) -> None:
        """A journal holding gzip (an archive put back under its name): run, --dry-run, validate
        --ledger and rollback exit 2 naming it and the command that decompresses it, send
        nothing and leave it byte for byte; after that command the run settles Tweet 710 as of
        undecidable origin (before: exit 0, `preexisting: true`, plain lines after the gzip)."""
        world, job = await _crashed_in_flight(make_world)
        journal = world.dir / "ledger.jsonl.sent"
        packed = gzip.compress(journal.read_bytes())
        journal.write_bytes(packed)
        sent = world.sandbox.state.requests
        for extra in ((), ("--dry-run",)):
            answer = await world.run(job, *extra)
            err = answer.stderr.decode()
            assert answer.returncode == 2, err
            assert f"its journal {journal} is gzip-compressed" in err
            assert _quoted(err) == f"mv {journal} {journal}.gz && gzip -d {journal}.gz"
        checked = bulkrt("validate", str(job), "--accounts", str(world.accounts), "--ledger",
                         "ledger.jsonl", cwd=world.dir)  # fmt: skip
        assert checked.returncode == 2 and "is gzip-compressed" in checked.stderr
        rolled = bulkrt("rollback", "ledger.jsonl", "--out", "undo.csv", cwd=world.dir)
        assert rolled.returncode == 2 and f"{journal}: is gzip-compressed" in rolled.stderr
        assert world.sandbox.state.requests == sent
        assert journal.read_bytes() == packed
        await anyio.run_process(_quoted(err), cwd=world.dir)
        again = await world.run(job)
        assert again.returncode == 0, again.stderr.decode()
        assert _origin_of_710(world) is None

    @both_modes
    async def test_a_damaged_journal_line_is_warned_about_before_sending(
        self, make_world: MakeWorld
    ) -> None:
        """Damaged journal lines (a key's event misspelt, zero-filled bytes, text after the JSON
        lines, where no legacy bare key can stand): the run warns naming the journal, the lines
        and their count before its first request (embedded and multi-machine mode read it
        alike), and so does rollback; the multi-machine mode's marks and a torn line (the last,
        then one the next run ends) are no damage (before: no word)."""
        world, job = await _finished_campaign(make_world)
        journal = world.dir / "ledger.jsonl.sent"
        lines = journal.read_text().splitlines(keepends=True)
        first = next(n for n, line in enumerate(lines) if line.startswith('{"e":"sent"'))
        lines[first] = lines[first].replace('{"e"', '{"e "', 1)
        damaged = [first + 1, len(lines) + 2, len(lines) + 3]
        journal.write_text(
            "".join(lines)
            + '{"e":"fleet-job","job":"j1"}\n\x00\x00\x00\ngarbage\n{"e":"sent","key":"to'
        )
        more = world.job([*CAMPAIGN, ("acct002", "3003", "retweet")])
        again = await world.run(more)
        err = again.stderr.decode()
        assert again.returncode == 0, err
        assert err.count("journal_lines_skipped") == 1, err
        assert f"journal={journal}" in err and "count=3" in err, err
        assert f"lines='{', '.join(map(str, damaged))}'" in err, err
        if world.mode is EMBEDDED:
            assert err.index("journal_lines_skipped") < err.index("run_started"), err
        assert "3003" in world.retweets("acct002")
        rolled = bulkrt("rollback", "ledger.jsonl", "--out", "undo.csv", cwd=world.dir)
        assert rolled.returncode == 0, rolled.stderr
        assert "journal_lines_skipped" in rolled.stderr and "count=3" in rolled.stderr

    async def test_an_empty_journal_beside_a_ledger_of_retweets_is_warned_about(
        self, make_world: MakeWorld
    ) -> None:
        """A finished campaign whose journal was emptied: the next run warns that it is empty
        before sending, as for a missing one (before: no word)."""
        world, job = await _finished_campaign(make_world)
        (world.dir / "ledger.jsonl.sent").write_bytes(b"")
        again = await world.run(job)
        err = again.stderr.decode()
        assert again.returncode == 0, err
        assert f"its journal {world.dir / 'ledger.jsonl.sent'} is empty" in err


class TestCompressedNames:
    """N2, N3: a ledger is never written under a compressed name, and an archived journal is
    replaced by no command."""

    async def test_a_new_ledger_named_gz_is_refused_and_sends_nothing(
        self, make_world: MakeWorld
    ) -> None:
        """`run` and `--dry-run` with a new `--ledger NEW.jsonl.gz` (or .xz, .zst) exit 2 saying
        a ledger is plain text and naming NEW.jsonl; nothing is sent or created (before: a
        plain-text ledger under the .gz name, which zcat and archive scripts then fail on)."""
        world = await make_world()
        job = world.job(CAMPAIGN)
        for name in ("new.jsonl.gz", "new.jsonl.xz", "new.zst"):
            target = world.dir / name
            for extra in ((), ("--dry-run",)):
                args = [
                    part if part != str(world.ledger) else str(target)
                    for part in world.run_args(job, *extra)
                ]
                answer = await run_cli(args)
                err = answer.stderr.decode()
                assert answer.returncode == 2, err
                assert "a ledger is plain text" in err and "name it new.jsonl" in err, err
            assert not target.exists()
        assert world.sandbox.state.requests == 0
        assert sorted(p.name for p in world.dir.iterdir()) == ["accounts.json", "campaign.csv"]

    @pytest.mark.parametrize(
        ("command", "out"),
        [
            (("rollback", "ledger.jsonl", "--out", "archive.jsonl.gz", "--force"), "archive.jsonl.gz"),  # noqa: E501
            (("expand", "--accounts", "acct001", "--tweets", "20", "--campaign", "z", "--out", "archive.csv.gz", "--force"), "archive.csv.gz"),  # noqa: E501
            (("report", "ledger.jsonl", "--html", "archive.html", "--force"), "archive.html"),
        ],
        ids=["rollback", "expand", "report"],
    )  # fmt: skip
    def test_a_gzipped_journal_is_never_replaced(
        self, tmp_path: Path, command: tuple[str, ...], out: str
    ) -> None:
        """A journal archived with gzip under any name is refused as an output even with
        --force ("never writes over one") and left byte for byte (before: replaced)."""
        journal = (
            '{"e":"sent","key":"k1","campaign":"spring","account":"acct001","tweet_id":"20"}\n'
        )
        files(tmp_path, acc_json=ACCOUNTS, ledger_jsonl=LEDGER_LINE)
        (tmp_path / "ledger.jsonl.sent").write_text(journal)
        packed = gzip.compress(journal.encode())
        (tmp_path / out).write_bytes(packed)
        answer = bulkrt(*command, cwd=tmp_path)
        assert answer.returncode == 2, answer.stderr
        assert (
            "is a gzip-compressed ledger's journal (<ledger>.sent); bulkrt never writes over one, "
            "even with --force"
        ) in answer.stderr
        assert (tmp_path / out).read_bytes() == packed


class TestNamedForWhatTheyAre:
    """N1 (job side): a ledger or journal, archived, renamed or cut short, given where a job or
    a ledger is expected is named for what it is."""

    def test_journals_and_ledgers_given_as_jobs_are_named(self, tmp_path: Path) -> None:
        """A gzipped journal (unknown job format by its name), a journal or a ledger renamed
        `.csv`: validate and run --dry-run exit 2 saying "this is a ledger's journal" or "this is
        a bulkrt ledger" (before: "unknown format" and "missing column")."""
        journal = (
            '{"e":"sent","key":"k1","campaign":"spring","account":"acct001","tweet_id":"20"}\n'
        )
        files(tmp_path, acc_json=ACCOUNTS)
        (tmp_path / "old.sent.gz").write_bytes(gzip.compress(journal.encode()))
        (tmp_path / "renamed.csv").write_text(journal)
        (tmp_path / "ledger.csv").write_text(LEDGER_LINE)
        for job, says in (
            ("old.sent.gz", "this is a ledger's journal"),
            ("renamed.csv", "this is a ledger's journal"),
            ("ledger.csv", "this is a bulkrt ledger"),
        ):
            for command in ("validate", "run"):
                extra = ("--ledger", "new.jsonl", "--dry-run") if command == "run" else ()
                answer = bulkrt(command, job, "--accounts", "acc.json", *extra, cwd=tmp_path)
                assert answer.returncode == 2, (job, answer.stderr)
                assert f"{job}" in answer.stderr and says in answer.stderr, (job, answer.stderr)
        assert not (tmp_path / "new.jsonl").exists()

    def test_a_gzipped_ledger_cut_short_is_named(self, tmp_path: Path) -> None:
        """The first 400 bytes of a gzipped ledger (an interrupted copy) as --ledger, status's
        LEDGER or an output with --force: named "a gzip-compressed bulkrt ledger" and left as it
        is (before: "not a bulkrt ledger", and replaced by --force)."""
        files(tmp_path, acc_json=ACCOUNTS, job_csv="account,tweet_id,action\nacct001,20,retweet\n")
        cut = gzip.compress((LEDGER_LINE * 200).encode())[:400]
        (tmp_path / "cut.jsonl.gz").write_bytes(cut)
        for args in (
            ("run", "job.csv", "--accounts", "acc.json", "--ledger", "cut.jsonl.gz", "--dry-run"),
            ("status", "cut.jsonl.gz"),
            ("report", "cut.jsonl.gz", "--html", "page.html"),
        ):
            answer = bulkrt(*args, cwd=tmp_path)
            assert answer.returncode == 2, (args, answer.stderr)
            assert "is a gzip-compressed bulkrt ledger" in answer.stderr, (args, answer.stderr)
        files(tmp_path, ledger_jsonl=LEDGER_LINE)
        over = bulkrt("rollback", "ledger.jsonl", "--out", "cut.jsonl.gz", "--force", cwd=tmp_path)
        assert over.returncode == 2 and "gzip-compressed bulkrt ledger" in over.stderr
        assert (tmp_path / "cut.jsonl.gz").read_bytes() == cut


class TestSystemOutputs:
    """O1: an output in /dev or /proc, or a link leading there, is never replaced; a link to a
    file is written through."""

    @pytest.mark.parametrize(
        ("command", "out"),
        [
            (("report", "ledger.jsonl", "--html", "OUT", "--force"), "mystdout"),
            (("expand", "--accounts", "acct001", "--tweets", "1", "--campaign", "z", "--out",
              "OUT", "--force"), "mystdout.csv"),
            (("rollback", "ledger.jsonl", "--out", "OUT", "--force"), "mystdout.csv"),
        ],
        ids=["report", "expand", "rollback"],
    )  # fmt: skip
    def test_a_link_to_standard_output_is_refused_even_with_force(
        self, tmp_path: Path, command: tuple[str, ...], out: str
    ) -> None:
        """An own link to /proc/self/fd/1, standard output redirected to a file: exit 2 "not a
        file bulkrt may replace", the link kept, nothing written to the file (before: the link
        replaced by a regular file)."""
        files(tmp_path, acc_json=ACCOUNTS, ledger_jsonl=LEDGER_LINE)
        (tmp_path / "ledger.jsonl.sent").write_text("")
        link = tmp_path / out
        link.symlink_to("/proc/self/fd/1")
        args = [part if part != "OUT" else out for part in command]
        with (tmp_path / "stdout.txt").open("wb") as stdout:
            answer = bulkrt(*args, cwd=tmp_path, stdout=stdout.fileno())
        assert answer.returncode == 2, answer.stderr
        assert out in answer.stderr, answer.stderr
        assert "is not a file bulkrt may replace: it is a link into /proc" in answer.stderr
        assert link.is_symlink() and str(link.readlink()) == "/proc/self/fd/1"
        assert (tmp_path / "stdout.txt").read_bytes() == b""

    def test_dev_stdout_is_refused_and_never_offered_force(self, tmp_path: Path) -> None:
        """`report --html /dev/stdout` (standard output a file) exits 2 naming /dev, without
        inviting --force (before: "exists; --force replaces it")."""
        files(tmp_path, ledger_jsonl=LEDGER_LINE)
        with (tmp_path / "stdout.txt").open("wb") as stdout:
            answer = bulkrt(
                "report", "ledger.jsonl", "--html", "/dev/stdout", cwd=tmp_path,
                stdout=stdout.fileno(),
            )  # fmt: skip
        assert answer.returncode == 2, answer.stderr
        assert "/dev/stdout is not a file bulkrt may replace: it is in /dev" in answer.stderr
        assert "--force replaces it" not in answer.stderr
        assert Path("/dev/stdout").is_symlink()

    def test_a_link_to_a_file_is_written_through_with_force(self, tmp_path: Path) -> None:
        """`--html link.html --force`, the link naming an earlier page: the page it names is
        replaced and the link kept (before: the link replaced, the old page left)."""
        files(tmp_path, ledger_jsonl=LEDGER_LINE)
        (tmp_path / "pages").mkdir()
        page = tmp_path / "pages" / "spring.html"
        page.write_text("old page")
        (tmp_path / "link.html").symlink_to(page)
        answer = bulkrt("report", "ledger.jsonl", "--html", "link.html", "--force", cwd=tmp_path)
        assert answer.returncode == 0, answer.stderr
        assert (tmp_path / "link.html").is_symlink()
        assert page.read_text().startswith("<!DOCTYPE html>")
        assert sorted(p.name for p in (tmp_path / "pages").iterdir()) == ["spring.html"]


class TestEmptyLedgerBesideItsArchive:
    """An empty ledger under the archived one's name (adv22 F2: `: > L.jsonl`, or a tool that
    created it, beside `L.jsonl.gz` or a compressed journal)."""

    @pytest.mark.parametrize(
        ("archived", "named"),
        [
            (("ledger.jsonl",), "ledger.jsonl.gz is beside it"),
            (("ledger.jsonl.sent",), "its journal ledger.jsonl.sent.gz is beside it"),
        ],
        ids=["ledger", "journal"],
    )
    async def test_it_is_refused_like_a_missing_one(
        self, make_world: MakeWorld, archived: tuple[str, ...], named: str
    ) -> None:
        """run, --dry-run and validate --ledger exit 2 naming the archive beside the empty
        ledger; nothing is sent and nothing changes (before: every item sent again, the
        campaign's retweets recorded as the owners', and rollback left them)."""
        world, job = await _finished_campaign(make_world)
        for name in archived:
            _archive(world.dir / name, ".gz")
        world.ledger.write_bytes(b"")
        if not world.dir.joinpath("ledger.jsonl.sent").exists():
            world.dir.joinpath("ledger.jsonl.sent").write_bytes(b"")  # a run's leftover
        kept = {path.name: path.read_bytes() for path in world.dir.glob("ledger.jsonl*")}
        sent = world.sandbox.state.requests
        for extra in ((), ("--dry-run",)):
            answer = await world.run(job, *extra)
            err = answer.stderr.decode()
            assert answer.returncode == 2, err
            assert f"{world.ledger}: is empty, but {named}" in err
        checked = bulkrt("validate", str(job), "--accounts", str(world.accounts), "--ledger",
                         "ledger.jsonl", cwd=world.dir)  # fmt: skip
        assert checked.returncode == 2 and f"is empty, but {named}" in checked.stderr
        assert world.sandbox.state.requests == sent
        assert {p.name: p.read_bytes() for p in world.dir.glob("ledger.jsonl*")} == kept

    async def test_status_names_an_archive_in_capitals_beside_an_empty_ledger(
        self, make_world: MakeWorld
    ) -> None:
        """adv23 A2 (status): an empty ledger beside ``L.jsonl.GZ`` is named as beside
        ``L.jsonl.gz`` (status counted nothing and exited 0)."""
        world, _ = await _finished_campaign(make_world)
        _archive(world.ledger, ".GZ")
        world.ledger.write_bytes(b"")
        read = bulkrt("status", "ledger.jsonl", cwd=world.dir)
        assert read.returncode == 2, read.stdout
        assert "ledger.jsonl is empty, but ledger.jsonl.GZ is beside it" in read.stderr
        assert (
            _quoted(read.stderr) == "mv ledger.jsonl.GZ ledger.jsonl.gz && gzip -d ledger.jsonl.gz"
        )

    async def test_an_empty_ledger_beside_its_plain_journal_is_the_advice_and_runs(
        self, make_world: MakeWorld
    ) -> None:
        """The README's advice for a lost ledger (`: > L.jsonl` beside its plain journal) still
        runs: every item is sent again and recorded as the campaign's."""
        world, job = await _finished_campaign(make_world)
        world.ledger.write_bytes(b"")
        answer = await world.run(job)
        assert answer.returncode == 0, answer.stderr.decode()
        assert [line["preexisting"] for line in world.lines()] == [False] * len(CAMPAIGN)


def test_a_new_ledger_named_compressed_in_capitals_is_refused_too(tmp_path: Path) -> None:
    """`--ledger NEW.jsonl.GZ` is a compressed name as `.gz` is (adv22 F5: the capitals slipped
    through and a plain-text ledger was written under it)."""
    refused = ledger_refusal(tmp_path / "new.jsonl.GZ", inputs={})
    assert refused is not None and "named as compressed (.GZ)" in refused
    assert "name it new.jsonl" in refused
