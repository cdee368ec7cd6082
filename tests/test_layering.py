"""The package's import rules, read from the source: one module talks HTTP, the runtime never
depends on the sandbox, and the pure core needs no I/O library."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bulkrt"
#: modules allowed to import the sandbox: the sandbox itself, its command and the demo
SANDBOX_USERS = ("sandbox/", "commands/sandbox.py", "commands/demo.py")
#: the one runtime module that holds an aiohttp session (the sandbox serves with aiohttp.web)
HTTP_MODULES = ("client.py", "sandbox/")
PURE = (
    "items.py", "ratelimits.py", "tiers.py", "outcome.py", "retry_policy.py", "windows.py",
    "scheduler.py", "work.py", "plan.py", "keys.py", "rows.py", "tweet_ids.py", "ledger.py",
    "rollback.py",
)  # fmt: skip


def imports(path: Path) -> set[str]:
    """Every module name ``path`` imports (absolute names)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


MODULES = sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py"))


def test_the_package_was_found() -> None:
    """The rules below look at the real package (a wrong path would check nothing)."""
    assert {"client.py", "dispatcher.py", "sandbox/state.py"} <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_import_rules(module: str) -> None:
    """Only the sandbox, its command and the demo import the sandbox; only the client and the
    sandbox import aiohttp; the pure core imports neither aiohttp, anyio nor aiolimiter."""
    names = imports(PACKAGE / module)
    tops = {name.split(".")[0] for name in names}
    if not module.startswith(SANDBOX_USERS):
        assert not any(n == "bulkrt.sandbox" or n.startswith("bulkrt.sandbox.") for n in names)
    if not module.startswith(HTTP_MODULES):
        assert "aiohttp" not in tops
    if module in PURE:
        assert not tops & {"aiohttp", "anyio", "aiolimiter", "structlog"}
