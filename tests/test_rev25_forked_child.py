"""What the operator's stderr shows from a command forked from the test process (`CliChild`,
and so `tests.test_mistakes.bulkrt`) against a fresh interpreter of the same command line: the
tests that moved to forked children (suite25) assert on that stderr ("no Traceback", one line
per warning), so it must hold what a real process prints."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.test_run import CliChild

CASES = [
    # a library's warning (the warnings module): a fresh interpreter prints it on stderr
    ("import warnings; warnings.warn('a library warns')", "UserWarning: a library warns"),
    # a library's logged error (asyncio logs "Task exception was never retrieved" so): with no
    # handler configured, logging's last resort prints it on stderr
    (
        "import logging; logging.getLogger('asyncio').error('Task exception was never retrieved')",
        "Task exception was never retrieved",
    ),
    # what runs as the interpreter shuts down (atexit, finalizers): "Exception ignored in" and its
    # traceback are printed then
    (
        "import atexit, sys; atexit.register(lambda: sys.stderr.write('at exit\\n'))",
        "at exit",
    ),
]


def forked_stderr(script: str) -> str:
    child = CliChild([sys.executable, "-c", script])
    deadline = time.monotonic() + 30
    while child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    child.close()
    return child.stderr().decode()


@pytest.mark.parametrize(
    ("script", "said"),
    [
        *CASES[:2],
        pytest.param(
            *CASES[2],
            marks=pytest.mark.xfail(
                strict=True,
                reason="the child ends with os._exit: what runs at shutdown (atexit, finalizers, "
                "joining threads) is seen only by a fresh interpreter",
            ),
        ),
    ],
    ids=["warning", "logging", "atexit"],
)
def test_a_forked_child_prints_what_a_fresh_interpreter_prints(script: str, said: str) -> None:
    """The same ``python -c SCRIPT`` run fresh and forked: both print ``said`` on stderr."""
    fresh = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert said in fresh.stderr, fresh.stderr
    assert said in forked_stderr(script)
