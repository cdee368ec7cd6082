"""`bulkrt sandbox` as an operator runs it: a real process that prints its URL, writes an accounts
file whose credentials work, and stops cleanly on SIGINT or SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from oauthlib.oauth1 import Client as OAuth1Client

from tests.test_mistakes import bulkrt
from tests.test_run import PYTHON_M_BULKRT, CliChild

LISTENING = "bulkrt sandbox listening on "


class Served:
    def __init__(self, process: CliChild, url: str, accounts: Path) -> None:
        self.process = process
        self.url = url
        self.accounts = accounts


def start(tmp_path: Path, *args: str) -> Served:
    """`bulkrt sandbox --port 0 --accounts-out a.json ARGS` in its own process (forked from the
    test process, `tests.test_run.CliChild`: no interpreter start-up), once it says it listens."""
    accounts = tmp_path / "a.json"
    process = CliChild(
        [*PYTHON_M_BULKRT, "sandbox", "--port", "0", "--accounts-out", str(accounts), *args]
    )
    deadline = time.monotonic() + 30
    while "\n" not in (said := process.stdout().decode()):
        if process.poll() is not None or time.monotonic() > deadline:
            process.close()
            raise AssertionError(f"{said}{process.stderr().decode()}")
        time.sleep(0.01)
    line = said.split("\n", 1)[0]
    assert line.startswith(LISTENING), (line, process.stderr().decode())
    return Served(process, line[len(LISTENING) :].strip(), accounts)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """`bulkrt sandbox --users 3 --accounts-out a.json` running in its own process."""
    sandbox = start(tmp_path, "--users", "3", "--seed", "5")
    yield sandbox
    stop(sandbox)


def stop(sandbox: Served) -> None:
    """Kill the sandbox if it still runs, and reap it."""
    sandbox.process.close()


def exit_of(process: CliChild, timeout: float) -> int:
    """The process's exit code, waiting for it up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while (code := process.poll()) is None:
        assert time.monotonic() < deadline, "still running"
        time.sleep(0.01)
    return code


def oauth1_header(
    url: str, method: str, oauth1: dict[str, str], consumer_secret: str | None = None
) -> str:
    client = OAuth1Client(
        oauth1["consumer_key"],
        consumer_secret or oauth1["consumer_secret"],
        oauth1["access_token"],
        oauth1["access_token_secret"],
    )
    _, headers, _ = client.sign(url, method)  # type: ignore[arg-type]
    return str(headers["Authorization"])


async def test_the_written_accounts_work_and_a_wrong_secret_is_401(served: Served) -> None:
    """Credentials from --accounts-out retweet (OAuth 1.0a and 2.0); a wrong secret gets 401."""
    accounts = json.loads(served.accounts.read_text())["accounts"]
    assert sorted(accounts) == ["acct001", "acct002", "acct003"]
    assert {kind for a in accounts.values() for kind in a if kind.startswith("oauth")} == {
        "oauth1",
        "oauth2",
    }
    first, second = accounts["acct001"], accounts["acct002"]
    url = f"{served.url}/2/users/{first['user_id']}/retweets"
    async with aiohttp.ClientSession() as session:
        headers = {"Authorization": oauth1_header(url, "POST", first["oauth1"])}
        async with session.post(url, json={"tweet_id": "20"}, headers=headers) as response:
            assert (response.status, await response.json()) == (200, {"data": {"retweeted": True}})
        wrong = {
            "Authorization": oauth1_header(url, "POST", first["oauth1"], consumer_secret="x" * 50)
        }
        async with session.post(url, json={"tweet_id": "21"}, headers=wrong) as response:
            assert response.status == 401
        bearer = {"Authorization": f"Bearer {second['oauth2']['access_token']}"}
        url2 = f"{served.url}/2/users/{second['user_id']}/retweets"
        async with session.post(url2, json={"tweet_id": "20"}, headers=bearer) as response:
            assert response.status == 200
        async with session.get(
            f"{served.url}/__sandbox/users/{first['user_id']}/retweets"
        ) as response:
            assert await response.json() == {"tweet_ids": ["20"]}


def test_the_accounts_file_is_private_and_deterministic(served: Served, tmp_path: Path) -> None:
    """The accounts file is readable by its owner only, and the same seed gives the same users."""
    assert stat.S_IMODE(os.stat(served.accounts).st_mode) == 0o600
    first = json.loads(served.accounts.read_text())["accounts"]
    other_dir = tmp_path / "second"
    other_dir.mkdir()
    second = start(other_dir, "--users", "3", "--seed", "5")
    try:
        later = json.loads(second.accounts.read_text())["accounts"]
    finally:
        stop(second)
    assert {n: a["user_id"] for n, a in first.items()} == {
        n: a["user_id"] for n, a in later.items()
    }
    assert first["acct001"]["oauth1"] == later["acct001"]["oauth1"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_the_sandbox_cleanly(served: Served, signum: signal.Signals) -> None:
    """SIGINT or SIGTERM ends the process with exit code 0 and no traceback."""
    served.process.send_signal(signum)
    assert exit_of(served.process, timeout=10) == 0
    assert "Traceback" not in served.process.stderr().decode()


def test_sigterm_stops_a_fresh_sandbox_process_cleanly(tmp_path: Path) -> None:
    """The case above in a fresh interpreter, which the forked children cannot show: what runs
    as the interpreter shuts down after SIGTERM (exit handlers, finalizers, threads joined)
    prints no traceback and leaves exit code 0."""
    argv = [*PYTHON_M_BULKRT, "sandbox", "--port", "0", "--accounts-out", "accounts.json"]
    with subprocess.Popen(
        argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        assert "listening on " in process.stdout.readline()
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert (process.returncode, "Traceback" in err) == (0, False), err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fault", "meltdown=0.1"], "meltdown"),
        (["--fault-rate", "0.8", "--fault", "stall=0.5"], "add up to at most 1"),
        (["--hidden-cap", "lots"], "LIMIT/SECONDS"),
        (["--tier", "gold"], "gold"),
        (["--tls-cert", __file__], "--tls-key"),
    ],
)
def test_bad_options_exit_2_with_a_message(args: list[str], message: str) -> None:
    """A sandbox option it cannot use is a usage error (exit 2) that names the problem."""
    proc = bulkrt("sandbox", "--port", "0", *args, cwd=Path.cwd())
    assert proc.returncode == 2
    assert message in proc.stderr


def test_a_port_in_use_is_reported(served: Served) -> None:
    """Asking for a port that is taken exits 2 with a message naming host and port."""
    port = served.url.rsplit(":", 1)[1]
    proc = bulkrt("sandbox", "--port", port, cwd=Path.cwd())
    assert proc.returncode == 2
    assert f"127.0.0.1:{port}" in proc.stderr
