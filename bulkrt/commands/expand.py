"""`bulkrt expand`: write a campaign's job file as the cross product of accounts and Tweets."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import click

from bulkrt import logs
from bulkrt.commands.outputs import (
    ACCOUNTS_FILE,
    GZIPPED_LEDGER,
    JOB,
    JOURNAL,
    LEDGER,
    SANDBOX_ACCOUNTS,
    UNDO_JOB,
    kind_of,
    refusal,
)
from bulkrt.errors import BulkrtError, Problem
from bulkrt.exitcodes import ExitCode
from bulkrt.jobs.campaign import expand, read_accounts, read_tweets, split_entries
from bulkrt.jobs.job_files import format_of
from bulkrt.jobs.job_writer import write_job
from bulkrt.jobs.rows import ACTIONS, first_warnings
from bulkrt.jobs.tweet_ids import parse_tweet_id, rounding_suspect
from bulkrt.ledger.undo import ROLLBACK_SUFFIX

__all__ = ["command"]


class _BadInput(BulkrtError):
    """Bad --accounts or --tweets entries: every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(problems)
        self.problems = problems


def _read_text(path: Path, option: str) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _BadInput([Problem(str(path), None, "file", f"invalid UTF-8: {exc}")]) from None
    except OSError as exc:
        problem = Problem(str(path), None, "file", f"cannot read ({option}): {exc.strerror}")
        raise _BadInput([problem]) from None


def _accounts_document_names(path: Path, text: str) -> list[tuple[int | None, str]]:
    """The names of an accounts JSON file (no line numbers: JSON keys have none to report)."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _BadInput([Problem(str(path), exc.lineno, "file", f"bad JSON: {exc.msg}")]) from None
    accounts = document.get("accounts") if isinstance(document, dict) else None
    if not isinstance(accounts, dict) or not accounts:
        raise _BadInput([Problem(str(path), None, "accounts", "no accounts object with names")])
    return [(None, str(name)) for name in accounts]


def _file_named(value: str, option: str) -> Path | None:
    """The file a list option's ``value`` is to be read from, or None to read it as a list.

    A value that names no file, or cannot be a file's name (longer than a name may be: a long
    list), is a list. A value that is a file here *and* reads as a list of entries (`_is_list`)
    is read as the list typed, with a warning: the entries are what the command line shows, and
    ``./NAME`` names the file without doubt (a Tweet's ID or an account's name is a likely name
    for an unrelated file, such as a saved post, and reading it would target other Tweets).
    """
    path = Path(value)
    try:
        found = path.is_file()
    except OSError as exc:
        if exc.errno not in _NO_SUCH_NAME:
            problem = Problem(value, None, option, f"cannot read: {exc.strerror}")
            raise _BadInput([problem]) from None
        found = False
    if not found:
        return None
    if not _is_list(value, option):
        return path
    click.echo(
        f"warning: {option} {value}: read as {_LISTS[option]}, as typed, although a file "
        f"named {value} is here too; write ./{value} to read it",
        err=True,
    )
    return None


#: why a value names no file: nothing of that name, or a name no file can have (too long)
_NO_SUCH_NAME = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG, errno.ELOOP})


def _is_list(value: str, option: str) -> bool:
    """Whether ``value`` reads as a list of the option's entries: no path (``/``) and no list
    file's ending, and (for ``--tweets``) every entry a Tweet ID or post URL.

    >>> _is_list("20", "--tweets"), _is_list("spring", "--tweets"), _is_list("./20", "--tweets")
    (True, False, False)
    >>> _is_list("acme", "--accounts"), _is_list("accounts.json", "--accounts")
    (True, False)
    """
    entry = value.strip()
    if "/" in entry or entry.lower().endswith(_LIST_SUFFIXES):
        return False
    if option == "--accounts":
        return True
    try:
        for part in entry.split(","):
            parse_tweet_id(part)
    except ValueError:
        return False
    return True


def _entries(
    value: str, path: Path | None, option: str
) -> tuple[list[tuple[int | None, str]], str, str]:
    """Entries of a list option, from ``path`` if `_file_named` gave one: (entries, source
    for messages, what their numbers count)."""
    if path is not None:
        kind = kind_of(path)
        text = "" if kind == GZIPPED_LEDGER else _read_text(path, option)  # not text: named below
        csv_job = kind in (JOB, UNDO_JOB) and not text.lstrip().startswith("{")  # see below
        if not csv_job and kind in _NOT_A_LIST[option]:
            message = (
                f"this is {kind}, not a list of {_LISTS[option]}: nothing was read from it; "
                f"give a file of one entry a line, or the entries with commas"
            )
            raise _BadInput([Problem(str(path), None, "file", message)])
        if option == "--accounts" and text.lstrip().startswith("{"):
            return _accounts_document_names(path, text), str(path), "line"
        entries = split_entries(text)
        if entries and _is_job_header(entries[0][1]):
            message = (
                f"this is a job file (CSV), not a list of {_LISTS[option]}: nothing was read "
                f"from it; give a file of one entry a line, or the entries with commas"
            )
            raise _BadInput([Problem(str(path), entries[0][0], "file", message)])
        return list(entries), str(path), "line"
    if _names_a_file(value, option):
        message = f"no such file (and not a list of {_LISTS[option]})"
        raise _BadInput([Problem(value, None, option, message)])
    parts = [part.strip() for part in value.split(",")]
    if not any(parts):
        raise _BadInput([Problem(option, None, option.lstrip("-"), "empty list")])
    return list(enumerate(parts, start=1)), option, "entry"


#: what each list option's entries are, in messages
_LISTS = {"--tweets": "Tweet IDs or post URLs", "--accounts": "account names"}
#: bulkrt's files that are no list for each option (`kind_of`; an accounts file is one for
#: --accounts)
_NOT_A_LIST = {
    "--tweets": (LEDGER, GZIPPED_LEDGER, JOURNAL, JOB, UNDO_JOB, ACCOUNTS_FILE, SANDBOX_ACCOUNTS),
    "--accounts": (LEDGER, GZIPPED_LEDGER, JOURNAL, JOB, UNDO_JOB),
}
#: what the name of a list file usually ends with; no Tweet ID or account name does
_LIST_SUFFIXES = (".txt", ".csv", ".json", ".jsonl", ".ndjson", ".list", ".gz")


def _is_job_header(line: str) -> bool:
    """Whether ``line`` is a job file's CSV header (it names the account and tweet_id columns).

    >>> _is_job_header("campaign,account,tweet_id,action"), _is_job_header("20")
    (True, False)
    """
    columns = {column.strip().strip('"').lower() for column in line.split(",")}
    return {"account", "tweet_id"} <= columns


def _names_a_file(value: str, option: str) -> bool:
    """Whether ``value``, which names no file, still reads as a file's name (a path, or a name
    ending as list files do) rather than a list: one entry, not a post URL.

    >>> _names_a_file("spring-tweets.txt", "--tweets"), _names_a_file("20,21", "--tweets")
    (True, False)
    >>> _names_a_file("lists/accounts", "--accounts"), _names_a_file("acme", "--accounts")
    (True, False)
    """
    entry = value.strip()
    if "," in entry or "://" in entry:
        return False
    return "/" in entry or entry.lower().endswith(_LIST_SUFFIXES)


def _warn_rounded(entries: list[tuple[int | None, str]], source: str, bad: list[Problem]) -> None:
    """A warning for each valid Tweet entry that looks rounded by a spreadsheet (a few)."""
    refused = {problem.line for problem in bad}
    warn = first_warnings(lambda problem: click.echo(f"warning: {problem}", err=True))
    for number, text in entries:
        if number not in refused and text.strip().isdigit():
            suspect = rounding_suspect(text.strip())
            if suspect is not None:
                warn(Problem(source, number, "tweet_id", suspect))
    warn.finish()


def _known_accounts(path: Path | None) -> set[str] | None:
    if path is None:
        return None
    names = _accounts_document_names(path, _read_text(path, "--accounts-file"))
    return {name for _, name in names}


#: shown at the end of `--help`
_EXAMPLES = "\b\nExamples:\n" + "\n".join(
    [
        "  bulkrt expand --accounts acct001,acct002 --tweets 1861359704022656025 \\",
        "      --campaign spring --out spring.csv",
        "  bulkrt expand --accounts accounts.json --tweets tweets.txt --campaign spring \\",
        "      --out spring.csv",
    ]
)


@click.command("expand", epilog=_EXAMPLES)
@click.option(
    "--accounts",
    "accounts_arg",
    required=True,
    metavar="NAMES_OR_FILE",
    help="Comma-separated account names, or a file: one name a line, or an accounts JSON file "
    "(all its names).",
)
@click.option(
    "--tweets",
    "tweets_arg",
    required=True,
    metavar="IDS_OR_FILE",
    help="Comma-separated Tweet IDs or post URLs, or a file of them, one a line.",
)
@click.option(
    "--action",
    type=click.Choice(sorted(ACTIONS)),
    default="retweet",
    show_default=True,
    help="The action of every row.",
)
@click.option("--campaign", required=True, help="The campaign of every row.")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The job file to write (.csv or .jsonl, optionally .gz).",
)
@click.option(
    "--accounts-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Check every account name against this accounts file.",
)
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
def command(
    accounts_arg: str,
    tweets_arg: str,
    action: str,
    campaign: str,
    out: Path,
    accounts_file: Path | None,
    force: bool,
) -> None:
    """Write the job of every (account, Tweet) pair: each Tweet across every account.

    Lists may be files (blank lines and # comments skipped). Every bad entry is reported as
    FILE:LINE: field: what is wrong (--tweets:N for the Nth entry of a list), and nothing is
    written; exit 2. Then run the job with `bulkrt validate` and `bulkrt run`.
    """
    logs.configure()
    try:
        accounts, tweets = _plan(accounts_arg, tweets_arg, campaign, out, accounts_file, force)
        written = write_job(out, expand(accounts, tweets, ACTIONS[action], campaign))
    except _BadInput as bad:
        for problem in bad.problems:
            click.echo(str(problem), err=True)
        click.echo(f"bulkrt expand: {len(bad.problems)} problem(s); nothing written", err=True)
        raise SystemExit(ExitCode.BAD_INPUT) from None
    except (OSError, ValueError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        click.echo(f"bulkrt expand: cannot write {out}: {detail}", err=True)
        raise SystemExit(ExitCode.BAD_INPUT) from None
    click.echo(
        f"bulkrt expand: {len(accounts)} account(s) x {len(tweets)} Tweet(s) = {written} "
        f"{ACTIONS[action].value} item(s) of campaign {campaign} -> {out}"
    )


def _plan(
    accounts_arg: str,
    tweets_arg: str,
    campaign: str,
    out: Path,
    accounts_file: Path | None,
    force: bool,
) -> tuple[list[str], list[str]]:
    """The checked account names and Tweet IDs; raise `_BadInput` listing every problem."""
    problems: list[Problem] = []
    if not campaign.strip():
        problems.append(Problem("--campaign", None, "campaign", "empty"))
    elif campaign.endswith(ROLLBACK_SUFFIX):
        message = f"{campaign!r} ends with {ROLLBACK_SUFFIX!r}, which rollback jobs use"
        problems.append(Problem("--campaign", None, "campaign", message))
    accounts_path = _file_named(accounts_arg, "--accounts")
    tweets_path = _file_named(tweets_arg, "--tweets")
    inputs = {
        f"the {option} file it reads": path
        for option, path in (("--accounts", accounts_path), ("--tweets", tweets_path))
        if path is not None
    }
    if accounts_file is not None:
        inputs["the --accounts-file it reads"] = accounts_file
    refused = refusal(out, force=force, inputs=inputs, writes=JOB)
    if refused is not None:
        problems.append(Problem(str(out), None, "--out", refused))
    elif format_of(out.name) is None:  # a file it may not write: its name is no matter
        problems.append(Problem(str(out), None, "--out", "name it .csv or .jsonl (optionally .gz)"))
    known = _known_accounts(accounts_file)
    entries, source, unit = _entries(accounts_arg, accounts_path, "--accounts")
    accounts, bad = read_accounts(entries, source=source, unit=unit, known=known)
    problems += bad
    entries, source, unit = _entries(tweets_arg, tweets_path, "--tweets")
    tweets, bad = read_tweets(((n or 0, text) for n, text in entries), source=source, unit=unit)
    problems += bad
    _warn_rounded(entries, source, bad)
    if not problems and not (accounts and tweets):
        problems.append(Problem("--accounts", None, "account", "no accounts or no Tweets"))
    if problems:
        raise _BadInput(problems)
    return accounts, tweets
