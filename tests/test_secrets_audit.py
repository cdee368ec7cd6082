"""No secret reaches any output, including the tokens issued during the run (issue 12): the
sandbox rotates OAuth 2.0 tokens every few seconds and echoes the Authorization header and the
refresh token in its error bodies; every output an operator or a file can see is searched for
every secret the sandbox ever issued and every secret the accounts file ever held."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import aiohttp

from tests.test_resilience import killed_mid_run, secrets_of
from tests.test_run import PYTHON_M_BULKRT, MakeWorld, rows, run_cli

ACCOUNTS = [f"acct{n:03d}" for n in range(1, 7)]


class TestSecretsAudit:
    async def test_no_secret_ever_issued_reaches_any_output(self, make_world: MakeWorld) -> None:
        """Runs with rotating tokens, echoed secrets in error bodies (rejected items, a refused
        refresh token) and a crash: stdout, stderr (JSON logs, verbose), the ledger and its
        sidecars, `status`, the HTML report and the rollback job hold none of the secrets."""
        world = await make_world(
            confidential_client=True,
            token_ttl=2,
            echo_secrets=True,
            deleted_tweets=frozenset({"103", "107"}),
        )
        document = json.loads(world.accounts.read_text())
        # acct006's refresh token is refused, and the token endpoint echoes it
        document["accounts"]["acct006"]["oauth2"]["refresh_token"] = "bogus-refresh-0123456789abc"
        world.accounts.write_text(json.dumps(document))
        world.accounts.chmod(0o600)
        held = secrets_of(document)
        outputs: list[bytes] = []
        first = await world.run(world.job(rows(ACCOUNTS, 10)), "-v", "--log-json")
        outputs += [first.stdout, first.stderr]
        assert first.returncode == 1  # the deleted Tweets and acct006
        assert "needs attention: account acct006" in first.stdout.decode()
        held |= secrets_of(json.loads(world.accounts.read_text()))
        crash_job = world.job(rows(ACCOUNTS[:4], 40, first=500), name="crash.csv")
        outputs += await killed_mid_run(world, crash_job, after_lines=80)
        report = world.dir / "report.html"
        for command in (
            ["status", str(world.ledger)],
            ["status", str(world.ledger), "--json"],
            ["report", str(world.ledger), "--html", str(report)],
            ["rollback", str(world.ledger), "--out", str(world.dir / "undo.csv")],
        ):
            done = await run_cli([*PYTHON_M_BULKRT, *command])
            assert done.returncode == 0, done.stderr.decode()
            outputs += [done.stdout, done.stderr]
        sidecars = [p for p in world.dir.iterdir() if p.name.startswith("ledger.jsonl")]
        files = [*sidecars, report, world.dir / "undo.csv", *_accounts_sidecars(world.dir)]
        for copy in world.dir.glob(".accounts.json.*.tmp"):  # a write-back the kill interrupted
            assert stat.S_IMODE(copy.stat().st_mode) == 0o600
        outputs += [path.read_bytes() for path in files if path.is_file()]
        held |= secrets_of(json.loads(world.accounts.read_text()))
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{world.sandbox.url}/__sandbox/oauth2/issued") as answer,
        ):
            issued = set((await answer.json())["tokens"])
        # tokens were rotated during the runs, and the echoes did put secrets in error bodies
        assert world.sandbox.state.stats()["refreshes"] >= 6
        assert len(issued) >= 12
        ledger = world.ledger.read_text()
        assert "Authorization: [redacted]" in ledger or "oauth_token=" in ledger
        text = b"\n".join(outputs).decode(errors="replace")
        leaked = sorted(secret for secret in issued | held if secret in text)
        where = [text[max(0, text.find(s) - 300) : text.find(s) + 60] for s in leaked[:2]]
        assert leaked == [], where


def _accounts_sidecars(directory: Path) -> list[Path]:
    """The accounts file's lock and refresh marks (not the file, nor a temporary copy of it that
    the kill may have left during a write-back: those hold the secrets by design, mode 0600)."""
    return [p for p in directory.iterdir() if p.name.startswith("accounts.json.")]
