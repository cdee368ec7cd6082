"""A job file's row: `Row`, the one checked shape that job files are read into and written from,
and `check_row`, a pure function from raw fields to a `Row` or a list of problems.

Fields (README "Job files"): ``account``, ``tweet_id``, ``action`` are required; ``campaign``
and ``id`` are optional. Values are stripped of surrounding whitespace. ``action`` is
case-insensitive: ``retweet``, ``undo``, or ``unretweet`` (an alias of ``undo``). An ``id`` may
not start with ``[``: that form is reserved for the keys bulkrt derives (see `bulkrt.jobs.keys`).
Unknown fields are not checked here; the reader warns about them once per file.

A ``tweet_id`` that is likely rounded (a JSON number above 2**53, which most tools round, or a
long ID ending in zeros as a spreadsheet leaves it) is valid, but gets a warning: such IDs can be
real. `first_warnings` keeps those of one file to the first few.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass

from bulkrt.core.items import Action
from bulkrt.errors import Problem
from bulkrt.jobs.tweet_ids import MAX_TWEET_ID, parse_tweet_id, rounding_suspect
from bulkrt.redaction import shown

__all__ = [
    "ACTIONS",
    "KNOWN_FIELDS",
    "REQUIRED_FIELDS",
    "Row",
    "check_row",
    "FirstWarnings",
    "first_warnings",
    "has_control",
    "has_lone_surrogate",
]

#: the fields every row must have, in the order problems are reported
REQUIRED_FIELDS = ("account", "tweet_id", "action")
#: every field bulkrt reads; others are ignored with a warning
KNOWN_FIELDS = frozenset({*REQUIRED_FIELDS, "campaign", "id"})

#: reports a problem with one field: (field, message)
_Reporter = Callable[[str, str], None]
#: receives a warning about a valid row
_Warn = Callable[[Problem], None]
#: the largest integer a JSON number keeps exactly in most tools (an IEEE double's 53 bits)
_EXACT_JSON_INT = 2**53
#: how many rows of one file get a rounding warning (`first_warnings`)
_ROUNDING_WARNINGS = 20

#: the ``action`` values a job file (or ``bulkrt expand --action``) may give, lower-cased
ACTIONS = {"retweet": Action.RETWEET, "undo": Action.UNDO, "unretweet": Action.UNDO}
#: what cannot be written as UTF-8: undecodable bytes (decoded with ``surrogateescape``) and lone
#: UTF-16 surrogates (a JSON ``"\ud800"``); a valid pair is one code point once decoded
_SURROGATES = re.compile("[\ud800-\udfff]")
_CONTROLS = re.compile("[\x00-\x1f\x7f]")
#: either of the two above: a value without it needs neither search
_SUSPECT = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
#: longest campaign, account or id value accepted; longer values are almost surely a mistake
_MAX_TEXT = 200


def has_lone_surrogate(text: str) -> bool:
    """Whether ``text`` holds what UTF-8 cannot write: an undecodable byte or a lone surrogate.

    >>> undecodable = b"caf\\xe9".decode("utf-8", "surrogateescape")
    >>> has_lone_surrogate(undecodable), has_lone_surrogate("café")
    (True, False)
    """
    return _SURROGATES.search(text) is not None


def has_control(text: str) -> bool:
    """Whether ``text`` holds a control character (C0 or DEL), never valid in a name or an id.

    >>> has_control("acme\\n"), has_control("acme")
    (True, False)
    """
    return _CONTROLS.search(text) is not None


@dataclass(frozen=True, slots=True)
class Row:
    """A valid row of a job file, before it has a key (keys depend on the rows before it).

    Reading makes one per row (`check_row`); `bulkrt expand` and `bulkrt rollback` write them
    (`bulkrt.jobs.job_writer`), without an ``id`` or a place.

    >>> Row("spring", "acme", "20", Action.RETWEET).identity
    ('spring', 'acme', 'retweet', '20')
    """

    campaign: str
    account: str
    tweet_id: str
    action: Action
    #: the operator's own item id, when the row gives one
    id: str | None = None
    #: where the row was read, for messages (empty, and line 0, for a row bulkrt writes)
    source: str = ""
    line: int = 0

    @property
    def identity(self) -> tuple[str, ...]:
        """What makes two rows the same item: the ``id``, else the four values of a row."""
        if self.id is not None:
            return (self.id,)
        return (self.campaign, self.account, self.action.value, self.tweet_id)


def check_row(
    fields: Mapping[str, object],
    *,
    source: str,
    line: int,
    accounts: Container[str],
    default_campaign: str,
    warn: _Warn | None = None,
) -> Row | list[Problem]:
    """Return the row ``fields`` describe, or every problem with it (one per bad field); a
    valid ``tweet_id`` that is likely rounded goes to ``warn``.

    >>> fields = {"account": "acme", "tweet_id": "https://x.com/a/status/20", "action": "Unretweet"}
    >>> row = check_row(fields, source="j.csv", line=2, accounts={"acme"}, default_campaign="c")
    >>> row.tweet_id, row.action.value, row.campaign, row.identity
    ('20', 'undo', 'c', ('c', 'acme', 'undo', '20'))
    >>> [str(p) for p in check_row({}, source="j.csv", line=3, accounts=(), default_campaign="c")]
    ['j.csv:3: account: missing', 'j.csv:3: tweet_id: missing', 'j.csv:3: action: missing']
    """
    row = _plain_row(fields, source, line, accounts, default_campaign)
    if row is not None:
        # the rounding warning needs a last digit 0 (a plain row's ID is text, never a number)
        if warn is not None and row.tweet_id[-1] == "0":
            _warn_rounding(fields["tweet_id"], row.tweet_id, Problem(source, line, "", ""), warn)
        return row
    return _checked_row(fields, source, line, accounts, default_campaign, warn)


def _checked_row(
    fields: Mapping[str, object],
    source: str,
    line: int,
    accounts: Container[str],
    default_campaign: str,
    warn: _Warn | None,
) -> Row | list[Problem]:
    """`check_row`, every field checked in turn: the row, or every problem with it."""
    problems: list[Problem] = []

    def bad(field: str, message: str) -> None:
        problems.append(Problem(source, line, field, message))

    values: dict[str, str | None] = {}
    for name in (*REQUIRED_FIELDS, "campaign", "id"):
        values[name] = _text(fields.get(name), name, bad)

    for name in REQUIRED_FIELDS:
        if not values[name] and not any(p.field == name for p in problems):
            bad(name, "missing")

    account = values["account"]
    if account and account not in accounts:
        bad("account", f"unknown account {shown(account)} (not in the accounts file)")

    tweet_id = ""
    if values["tweet_id"]:
        tweet_id = _tweet_id(values["tweet_id"], bad)
        raw = fields["tweet_id"]
        # cheap tests first: both warnings need a last digit 0 or a JSON number
        if warn is not None and tweet_id and (tweet_id[-1] == "0" or not isinstance(raw, str)):
            _warn_rounding(raw, tweet_id, Problem(source, line, "", ""), warn)

    action = None
    if values["action"]:
        action = ACTIONS.get(values["action"].lower())
        if action is None:
            bad(
                "action",
                f"unknown action {shown(values['action'])} (use retweet, undo or unretweet)",
            )

    item_id = values["id"] or None
    if item_id is not None and item_id.startswith("["):
        bad("id", "may not start with '[' (reserved for the keys bulkrt derives)")

    campaign = _campaign(values["campaign"], default_campaign, bad)

    if problems or account is None or action is None:
        return problems
    return Row(
        campaign=campaign,
        account=account,
        tweet_id=tweet_id,
        action=action,
        id=item_id,
        source=source,
        line=line,
    )


def _plain_row(
    fields: Mapping[str, object],
    source: str,
    line: int,
    accounts: Container[str],
    default_campaign: str,
) -> Row | None:
    """`check_row`'s answer for the common row that has nothing wrong and nothing unusual (text
    values, a Tweet ID in digits), found with fewer steps; None sends the row to the full check,
    which alone writes problems."""
    get = fields.get
    values = []
    for name in ("account", "tweet_id", "action", "campaign", "id"):
        raw = get(name)
        if raw is None:
            if name in REQUIRED_FIELDS:
                return None
            values.append("")
            continue
        if type(raw) is not str:
            return None
        value = raw.strip()
        if len(value) > _MAX_TEXT:
            return None
        values.append(value)
    if _SUSPECT.search("".join(values)) is not None:  # one search for the row (a character class)
        return None
    account, tweet_id, action_text, campaign, item_id = values
    action = ACTIONS.get(action_text.lower())
    if (
        not account
        or account not in accounts
        or action is None
        or not (0 < len(tweet_id) <= 19 and tweet_id.isascii() and tweet_id.isdigit())
        or tweet_id[0] == "0"
        or int(tweet_id) > MAX_TWEET_ID
        or item_id.startswith("[")
        or (not campaign and has_lone_surrogate(default_campaign))
    ):
        return None
    return Row(
        campaign=campaign or default_campaign,
        account=account,
        tweet_id=tweet_id,
        action=action,
        id=item_id or None,
        source=source,
        line=line,
    )


def first_warnings(warn: _Warn, most: int = _ROUNDING_WARNINGS) -> FirstWarnings:
    """``warn`` for the first ``most`` warnings only; the last of them says so (one file's
    rows all rounded by a tool would otherwise give one warning per row), and `FirstWarnings.finish`
    says how many more there were.

    >>> seen = []
    >>> sink = first_warnings(seen.append, most=2)
    >>> for line in (2, 3, 4):
    ...     sink(Problem("j.csv", line, "tweet_id", "rounded?"))
    >>> sink.finish()
    >>> [str(p) for p in seen][1:]
    ['j.csv:3: tweet_id: rounded? (not repeated for later rows)', 'j.csv: tweet_id: 1 more row(s) with this warning, not listed']
    """  # noqa: E501
    return FirstWarnings(warn, most)


class FirstWarnings:
    """A warning sink that passes on the first few warnings of one file (`first_warnings`)."""

    __slots__ = ("_last", "_most", "_warn", "count")

    def __init__(self, warn: _Warn, most: int) -> None:
        self._warn = warn
        self._most = most
        self._last: Problem | None = None
        #: the warnings received
        self.count = 0

    def __call__(self, problem: Problem) -> None:
        self.count += 1
        self._last = problem
        if self.count < self._most:
            self._warn(problem)
        elif self.count == self._most:
            message = f"{problem.message} (not repeated for later rows)"
            self._warn(Problem(problem.file, problem.line, problem.field, message))

    def finish(self) -> None:
        """Once the file is read: how many warnings were not passed on, if any."""
        last, more = self._last, self.count - self._most
        if last is not None and more > 0:
            message = f"{more} more row(s) with this warning, not listed"
            self._warn(Problem(last.file, None, last.field, message))


def _tweet_id(value: str, bad: _Reporter) -> str:
    """The Tweet ID ``value`` names, or "" (reporting why) when it names none."""
    try:
        return parse_tweet_id(value)
    except ValueError as exc:
        bad("tweet_id", str(exc))
        return ""


def _warn_rounding(raw: object, tweet_id: str, where: Problem, warn: _Warn) -> None:
    """Warn (at ``where``'s file and line) if the valid ``tweet_id``, read from ``raw``, may
    be a rounded ID: a JSON integer above 2**53, or what `rounding_suspect` flags."""
    if isinstance(raw, int) and raw > _EXACT_JSON_INT:
        suspect: str | None = (
            f"a JSON number above 2**53 ({raw}): most tools (JavaScript, spreadsheets, many "
            f"JSON libraries) round such numbers, so it may name another Tweet; write the ID "
            f'as a string, in quotes ("tweet_id": "{raw}"), where the file is made'
        )
    else:
        suspect = rounding_suspect(tweet_id)
    if suspect is not None:
        warn(Problem(where.file, where.line, "tweet_id", suspect))


def _campaign(value: str | None, default: str, bad: _Reporter) -> str:
    """The row's campaign, or the default one (a file name may hold undecodable bytes)."""
    if not value and has_lone_surrogate(default):
        bad("campaign", "invalid UTF-8 in the default campaign (the job file's name)")
    return value or default


def _text(raw: object, name: str, bad: _Reporter) -> str | None:
    """The stripped text of one field, or None (reporting why) when it is unusable."""
    if raw is None:
        return None
    if isinstance(raw, str):
        value = raw.strip()
    elif isinstance(raw, int) and not isinstance(raw, bool) and name == "tweet_id":
        # A bare JSON number: exact here, though many tools round it above 2**53.
        value = str(raw)
    elif isinstance(raw, float) and name == "tweet_id":
        bad(
            name,
            f"a JSON number with a decimal point or exponent ({raw!r}) is not an exact ID: "
            f'write the ID as a string, in quotes ("tweet_id": "<its digits>")',
        )
        return None
    else:
        bad(name, f"must be a string, not {_json_type(raw)}")
        return None
    if has_lone_surrogate(value):
        bad(name, "invalid UTF-8 (an undecodable byte or a lone surrogate)")
        return None
    if len(value) > _MAX_TEXT:
        bad(name, f"too long ({len(value)} characters, at most {_MAX_TEXT})")
        return None
    if has_control(value):
        bad(name, f"control character in {shown(value)}")
        return None
    return value


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
