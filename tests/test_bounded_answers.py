"""Bounded answers (issue 12): a body larger than any the API sends, counted after decompression,
is a bad response, and a run's memory stays bounded whatever the server sends. The real CLI runs
in a subprocess whose peak RSS is measured by a fresh parent (``RUSAGE_CHILDREN``)."""

from __future__ import annotations

import sys

import anyio
import pytest

from bulkrt.sandbox import FaultKind
from bulkrt.sandbox.faults import ScriptedFault
from tests.test_run import MakeWorld, rows

#: peak RSS a run may reach while four 1 GiB bombs (or 64 MiB bodies) arrive, in KiB
RSS_BOUND_KIB = 200 * 1024

_MEASURE = (
    "import resource, subprocess, sys; "
    "done = subprocess.run(sys.argv[1:]); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
    "sys.exit(done.returncode)"
)


@pytest.mark.parametrize("kind", [FaultKind.GZIP_BOMB, FaultKind.OVERSIZED])
async def test_huge_answers_are_bad_responses_in_bounded_memory(
    make_world: MakeWorld, kind: FaultKind
) -> None:
    """Every answer to acct001 is a 1 GiB gzip bomb (or a 64 MiB body), four at a time: its
    items end error with type bad_response, the other account's items end ok, and the run's
    peak RSS stays under 200 MiB."""
    world = await make_world(limit=50, window=1.0)
    world.sandbox.state.faults.script(
        ScriptedFault(kind, count=1000, user_id=world.user_id("acct001"))
    )
    args = world.run_args(world.job(rows(["acct001", "acct002"], 4)), "--max-attempts", "2")
    done = await anyio.run_process([sys.executable, "-c", _MEASURE, *args], check=False)
    assert done.returncode == 1, done.stdout.decode() + done.stderr.decode()[-2000:]
    peak_kib = int(done.stderr.decode().strip().splitlines()[-1])
    assert peak_kib < RSS_BOUND_KIB
    lines = world.lines()
    bad = [line for line in lines if line["account"] == "acct001"]
    assert len(bad) == 4
    assert {(line["status"], line["error"]["type"]) for line in bad} == {("error", "bad_response")}
    assert {line["status"] for line in lines if line["account"] == "acct002"} == {"ok"}
    assert world.sandbox.state.stats()["by_fault"][str(kind)] == 8  # two attempts per item
