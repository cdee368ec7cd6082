"""Fixtures shared across test modules."""

import asyncio
from collections.abc import Callable, Iterator

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
