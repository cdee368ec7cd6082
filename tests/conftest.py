"""Fixtures shared across test modules."""

from tests.test_run import make_world  # noqa: F401  # re-exported: the sandbox-world fixture
