"""Fixtures shared across test modules."""

from collections.abc import Iterator

import pytest
import structlog

from tests.test_run import make_world  # noqa: F401  # re-exported: the sandbox-world fixture


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    """The CLI configures structlog; put the defaults back after every test."""
    yield
    structlog.reset_defaults()
