"""Tweet IDs as job files give them: bare IDs or post URLs, normalised to the ID (a pure function).

Accepted, after stripping surrounding whitespace:

- a bare ID: 1 to 19 ASCII digits, no leading zero, at most 2**63 - 1 (X's IDs are signed 64-bit);
- a post URL ``http(s)://[www.|mobile.]x.com/<user>/status/<id>``, the same on ``twitter.com``,
  and ``/i/web/status/<id>``; it may go on with ``/photo/N`` or ``/video/N``, a trailing ``/``,
  a query (``?s=20``) or a fragment. The ID in it follows the bare-ID rules.

Anything else (letters, signs, decimals, other sites, profile or search URLs) is rejected with a
message saying what was wrong.
"""

from __future__ import annotations

import re

from bulkrt.redaction import shown

__all__ = ["MAX_TWEET_ID", "parse_tweet_id"]

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
    return _check_digits(value, value)


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
