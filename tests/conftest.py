"""Fixtures shared across test modules."""

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog

from bulkrt.simulation.virtual_time import virtual_loop
from tests.redis_server import RedisServer
from tests.test_run import (
    EMBEDDED,
    FLEET_OPTIONS,
    RunMode,
    make_world,  # noqa: F401  # re-exported: the sandbox-world fixture
    preload_commands,
)

#: the tests that take a second or more, with their recorded seconds (``--record-durations``,
#: best on a quiet machine: a loaded one stretches the CPU-bound tests run beside the long ones)
DURATIONS = Path(__file__).with_name("durations.json")
#: a test shorter than this is left out of the record, and keeps its place in the collection
RECORDED = 1.0


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--record-durations``: rewrite `DURATIONS` from this session's tests."""
    parser.addoption(
        "--record-durations",
        action="store_true",
        help=f"write the tests of {RECORDED} s or more, with their seconds, to {DURATIONS.name}",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest tests run first, by their recorded seconds, and every other test in the
    collection's order after them: a long test started last would set the suite's wall time
    while the other xdist workers stand idle."""
    seconds = recorded()
    items.sort(key=lambda item: -seconds.get(item.nodeid, 0.0))


def recorded() -> dict[str, float]:
    """`DURATIONS`: the recorded seconds of each long test, by node id."""
    seconds: dict[str, float] = json.loads(DURATIONS.read_text()) if DURATIONS.exists() else {}
    return seconds


class DurationRecorder:
    """Sums each test's setup, call and teardown seconds as the reports arrive (from every
    xdist worker), and writes the long ones to `DURATIONS` at the end of the session."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.seconds[report.nodeid] = self.seconds.get(report.nodeid, 0.0) + report.duration

    def pytest_sessionfinish(self) -> None:
        """The tests that ran replace their record; the others' (a session of a few files)
        stay as they were."""
        kept = {n: s for n, s in recorded().items() if n not in self.seconds}
        kept.update({n: round(s, 1) for n, s in self.seconds.items() if s >= RECORDED})
        ordered = dict(sorted(kept.items(), key=lambda kv: (-kv[1], kv[0])))
        DURATIONS.write_text(json.dumps(ordered, indent=0) + "\n")


def pytest_configure(config: pytest.Config) -> None:
    """With ``--record-durations``, the controlling process (never an xdist worker) records."""
    if config.getoption("--record-durations") and not hasattr(config, "workerinput"):
        config.pluginmanager.register(DurationRecorder(), "bulkrt-durations")


@pytest.fixture(autouse=True, scope="session")
def _commands_loaded() -> None:
    """Every command's modules are imported once in each test process, so no CLI child forked
    from it (`tests.test_run.CliChild`, `tests.test_mistakes.bulkrt`) imports them again."""
    preload_commands()


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    """The CLI configures structlog; put the defaults back after every test."""
    yield
    structlog.reset_defaults()


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The event loop of each async test: a `looptime` loop (virtual time: it jumps to the next
    timer whenever every task waits) for tests marked ``virtual_time``, asyncio's own otherwise."""
    if item.get_closest_marker("virtual_time") is not None:
        return {"virtual_time": virtual_loop}
    return {"asyncio": asyncio.new_event_loop}


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real ``redis-server`` on a free loopback port, stopped after the test."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["embedded", "redis"])
def run_mode(request: pytest.FixtureRequest) -> RunMode:
    """Each mode a run-level test runs in, so the two cannot drift: the embedded mode, and the
    multi-machine mode (`bulkrt run --redis` on a `redis_server` of the test's own, the run
    alone working on its job). A test asks for it with `tests.test_run.both_modes`."""
    if request.param == "embedded":
        return EMBEDDED
    server: RedisServer = request.getfixturevalue("redis_server")
    return RunMode("redis", ("--redis", server.url, *FLEET_OPTIONS))
