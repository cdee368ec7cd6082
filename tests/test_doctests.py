"""Every example in bulkrt's docstrings runs as written: one test per module of the package, found
from the source tree (not a hand-picked list), so a new module's examples run without being named
here."""

from __future__ import annotations

import doctest
import importlib
import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bulkrt"
#: every module of the package by its dotted name (``bulkrt.core.scheduler``); ``__main__`` aside,
#: which only calls the CLI
MODULES = sorted(
    ".".join(("bulkrt", *p.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
    for p in PACKAGE.rglob("*.py")
    if p.name != "__main__.py"
)
#: how many modules held examples when this was written: a collector that finds fewer (or none)
#: fails; modules that gain examples need no change here
MODULES_WITH_EXAMPLES = 43


def examples_of(name: str) -> list[doctest.DocTest]:
    """The docstring tests of one module that hold at least one example."""
    module = importlib.import_module(name)
    return [test for test in doctest.DocTestFinder().find(module) if test.examples]


@pytest.mark.parametrize("name", MODULES)
def test_the_module_examples_hold(name: str) -> None:
    """Every example in the module's docstrings gives the output written under it."""
    out = io.StringIO()
    runner = doctest.DocTestRunner()

    def run_all() -> None:
        for test in examples_of(name):
            runner.run(test, out=out.write)

    # in a thread of its own, so an example's ``asyncio.run`` neither replaces nor orphans the
    # event loop a pytest plugin may have set on the main thread
    with ThreadPoolExecutor(1) as thread:
        thread.submit(run_all).result()
    assert runner.failures == 0, out.getvalue()


def test_the_collector_finds_the_examples() -> None:
    """The modules are the package's, and at least the expected number of them hold examples."""
    assert {"bulkrt.core.scheduler", "bulkrt.shell.dispatcher", "bulkrt.sandbox.oauth1"} <= set(
        MODULES
    )
    with_examples = [name for name in MODULES if examples_of(name)]
    assert len(with_examples) >= MODULES_WITH_EXAMPLES, with_examples
