"""Tweet IDs as job files give them: bare IDs or post URLs, normalised to the ID (a pure function).

Accepted, after stripping surrounding whitespace:

- a bare ID: 1 to 19 ASCII digits, no leading zero, at most 2**63 - 1 (X's IDs are signed 64-bit);
- a post URL ``http(s)://[www.|mobile.]x.com/<user>/status/<id>``, the same on ``twitter.com``,
  and ``/i/web/status/<id>``; it may go on with ``/photo/N`` or ``/video/N``, a trailing ``/``,
  a query (``?s=20``) or a fragment. The ID in it follows the bare-ID rules.

Anything else (letters, signs, decimals, other sites, profile or search URLs) is rejected with a
message saying what was wrong. The shapes a spreadsheet gives an ID it took for a number (Excel's
``="..."`` formula, a ``.0`` decimal, scientific notation) are named as such, with the fix.

A spreadsheet keeps 15 significant digits, so a longer ID it took for a number comes back with
its last digits zeroed: a valid ID of another Tweet. That cannot be told for sure (real IDs may
end in zeros), so `rounding_suspect` only flags the likely cases, for a warning.
"""

from __future__ import annotations

import re

from bulkrt.redaction import shown

__all__ = ["MAX_TWEET_ID", "parse_tweet_id", "rounding_suspect"]

#: the largest ID X can issue: IDs are signed 64-bit integers
MAX_TWEET_ID = 2**63 - 1

_DIGITS = re.compile(r"[0-9]{1,19}")
_POST_URL = re.compile(
    r"https?://(?:www\.|mobile\.)?(?:x|twitter)\.com/"
    r"(?:i/web|[A-Za-z0-9_]{1,50})/status(?:es)?/(?P<id>[0-9]+)"
    r"(?:/(?:photo|video)/[0-9]+)?/?(?:[?#].*)?",
    re.IGNORECASE,
)
_ANY_URL = re.compile(r"[a-z][a-z0-9+.-]*://", re.IGNORECASE)
#: Excel's way to keep a long number as text: ``="1861359704022656025"``
_EXCEL_FORMULA = re.compile(r'="(?P<id>[0-9]+)"')
#: a number written with a decimal part (``1861359704022656025.0``) or in scientific notation,
#: with a decimal point or (a spreadsheet in a comma-decimal locale: ``1,86136E+18``) a comma
_DECIMAL = re.compile(r"[0-9]+[.,][0-9]*")
_SCIENTIFIC = re.compile(r"[0-9]+(?:[.,][0-9]*)?[eE][+-]?[0-9]+")
#: how a spreadsheet loses an ID: 15 significant digits kept, the rest zeroed
_SPREADSHEET_DIGITS = 15
#: an ID this long ending in this many zeros is likely rounded (1 real ID in 10,000 is not)
_SUSPECT_ZEROS = 4
_TEXT_COLUMN = "format the ID column as text in the spreadsheet and paste the IDs again"


def parse_tweet_id(text: str) -> str:
    """Return the Tweet ID that ``text`` names, as a string of digits.

    Raises ValueError with an operator-readable message when ``text`` names no Tweet.

    >>> parse_tweet_id("https://x.com/jack/status/20?s=20")
    '20'
    """
    value = text.strip()
    if not value:
        raise ValueError("empty")
    if _ANY_URL.match(value):
        match = _POST_URL.fullmatch(value)
        if match is None:
            raise ValueError(f"not a post URL on x.com or twitter.com: {shown(value)}")
        return _check_digits(match["id"], value)
    if not value.isdigit():  # only a value that is no ID can be a spreadsheet's number
        _refuse_spreadsheet_number(value)
    return _check_digits(value, value)


def rounding_suspect(tweet_id: str) -> str | None:
    """Why ``tweet_id`` (valid, as `parse_tweet_id` returns it) may be another ID rounded by a
    spreadsheet (more than 15 digits, the last 4 or more zeros), or None.

    >>> rounding_suspect("1861359704022660000")[:46]
    "'1861359704022660000' ends in 4 zeros: perhaps"
    >>> rounding_suspect("1861359704022656025") is None, rounding_suspect("20000") is None
    (True, True)
    """
    if not tweet_id.endswith("0" * _SUSPECT_ZEROS) or len(tweet_id) <= _SPREADSHEET_DIGITS:
        return None  # most IDs: the one test on the path of every row
    zeros = len(tweet_id) - len(tweet_id.rstrip("0"))
    return (
        f"{tweet_id!r} ends in {zeros} zeros: perhaps a longer ID a spreadsheet rounded (Excel "
        f"keeps {_SPREADSHEET_DIGITS} significant digits), which names another Tweet; check it "
        f"against the post's URL (if it was rounded, {_TEXT_COLUMN})"
    )


def _refuse_spreadsheet_number(value: str) -> None:
    """Raise ValueError naming the cause when ``value`` is an ID as a spreadsheet writes a
    number: Excel's ``="..."`` text formula, a decimal, or scientific notation."""
    formula = _EXCEL_FORMULA.fullmatch(value)
    if formula is not None:
        raise ValueError(
            f'{value!r} is Excel\'s formula form (="...") of an ID kept as text: write the '
            f"digits alone ({formula['id']}), or format the ID column as text in the "
            f"spreadsheet before saving as CSV"
        )
    if _DECIMAL.fullmatch(value):
        raise ValueError(
            f"{value!r} is a decimal number: a spreadsheet or script wrote the IDs as numbers, "
            f"which keep {_SPREADSHEET_DIGITS} significant digits, so the ID may be rounded "
            f"too; {_TEXT_COLUMN}"
        )
    if _SCIENTIFIC.fullmatch(value):
        raise ValueError(
            f"{value!r} is in scientific notation: a spreadsheet showed the ID as a number and "
            f"its last digits are lost; {_TEXT_COLUMN}"
        )


def _check_digits(digits: str, value: str) -> str:
    if not _DIGITS.fullmatch(digits):
        if digits.isascii() and digits.isdigit():
            raise ValueError(f"too long ({len(digits)} digits, at most 19)")
        raise ValueError(f"not a Tweet ID (1-19 digits) or post URL: {shown(value)}")
    if len(digits) > 1 and digits.startswith("0"):
        raise ValueError(f"leading zero in Tweet ID: {shown(value)}")
    if int(digits) == 0:
        raise ValueError("Tweet ID 0 does not exist")
    if int(digits) > MAX_TWEET_ID:
        raise ValueError(f"too large for a Tweet ID (above 2**63-1): {shown(value)}")
    return digits
