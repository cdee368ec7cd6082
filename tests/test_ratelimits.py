"""Reading rate-limit headers into a snapshot, tolerating missing and garbage values."""

from __future__ import annotations

import pytest

from bulkrt.core.ratelimits import LimitReading, RateLimitSnapshot, parse_rate_limits


@pytest.mark.parametrize(
    ("headers", "window"),
    [
        (
            {"x-rate-limit-limit": "50", "x-rate-limit-remaining": "49",
             "x-rate-limit-reset": "1671196077"},
            LimitReading(50, 49, 1671196077.0),
        ),
        (
            {"X-Rate-Limit-Limit": "1", "X-RATE-LIMIT-REMAINING": "0",
             "x-Rate-Limit-Reset": " 1700000000 "},
            LimitReading(1, 0, 1700000000.0),
        ),
        ({"x-rate-limit-remaining": "3"}, LimitReading(None, 3, None)),
        (
            {"x-rate-limit-limit": "fifty", "x-rate-limit-remaining": "-1",
             "x-rate-limit-reset": "soon"},
            LimitReading(None, None, None),
        ),
        ({"x-rate-limit-reset": "nan"}, LimitReading(None, None, None)),
        ({"x-rate-limit-reset": "inf"}, LimitReading(None, None, None)),
        ({"x-rate-limit-reset": "1700000000.5"}, LimitReading(None, None, 1700000000.5)),
        ({"content-type": "application/json"}, None),
    ],
)  # fmt: skip
def test_window_headers(headers: dict[str, str], window: LimitReading | None) -> None:
    """The per-window headers are read case-insensitively; bad values read as None."""
    assert parse_rate_limits(headers).window == window


def test_24_hour_headers() -> None:
    """User and app 24-hour headers are read next to the window ones."""
    snap = parse_rate_limits(
        {
            "x-rate-limit-limit": "50",
            "x-rate-limit-remaining": "49",
            "x-rate-limit-reset": "1000",
            "x-user-limit-24hour-limit": "1000",
            "x-user-limit-24hour-remaining": "0",
            "x-user-limit-24hour-reset": "80000",
            "x-app-limit-24hour-limit": "100000",
            "x-app-limit-24hour-remaining": "99",
            "x-app-limit-24hour-reset": "90000",
        }
    )
    assert snap.user_day == LimitReading(1000, 0, 80000.0)
    assert snap.app_day == LimitReading(100000, 99, 90000.0)
    assert snap.exhausted_until() == 80000.0


@pytest.mark.parametrize(
    ("snap", "until"),
    [
        (RateLimitSnapshot(), None),
        (RateLimitSnapshot(LimitReading(50, 0, 10.0)), 10.0),
        (RateLimitSnapshot(LimitReading(50, 0, None)), None),
        (RateLimitSnapshot(LimitReading(50, 7, 10.0)), None),
        (
            RateLimitSnapshot(LimitReading(50, 0, 10.0), app_day=LimitReading(9, 0, 20.0)),
            20.0,
        ),
    ],
)
def test_snapshot_queries(snap: RateLimitSnapshot, until: float | None) -> None:
    """exhausted_until takes the latest reset among the readings with nothing remaining."""
    assert snap.exhausted_until() == until
