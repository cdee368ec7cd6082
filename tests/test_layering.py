"""The package's shape, read from the source: which wing may import which, that importing the
pure core loads no I/O library (checked transitively, in a fresh interpreter), that no two
modules or classes share a name, and that every exception is in `bulkrt.errors`' tree. Each
wing's ``__init__`` docstring states its rule in words."""

from __future__ import annotations

import ast
import builtins
import functools
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bulkrt"
MODULES = sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py"))
#: the foundation every wing may use: exceptions, exit codes, secret masking, atomic files, logs
FOUNDATION = {"bulkrt", "errors", "exitcodes", "redaction", "atomic", "logs"}
#: wing -> the wings (and foundation modules) its modules may import, besides themselves: the one
#: list of these rules (the wings' docstrings and the README say them in words). The pure core is
#: the ``core`` wing, every module under ``bulkrt/core/``.
MAY_IMPORT: dict[str, set[str]] = {
    "core": {"bulkrt", "errors", "redaction"},
    "jobs": {"bulkrt", "errors", "redaction", "atomic", "core"},
    "ledger": FOUNDATION | {"core", "jobs"},
    "reporting": FOUNDATION | {"core", "ledger"},
    "shell": FOUNDATION | {"core", "jobs", "ledger"},
    "sandbox": {"bulkrt", "core"},
    "simulation": FOUNDATION | {"core", "jobs", "ledger", "shell", "sandbox"},
    "fleet": FOUNDATION | {"core", "jobs", "ledger", "shell"},
    "commands": FOUNDATION
    | {"core", "jobs", "ledger", "reporting", "shell", "sandbox", "simulation", "fleet"},
    # the foundation itself
    "errors": {"redaction"},
    "exitcodes": set(),
    "redaction": set(),
    "atomic": set(),
    "logs": {"redaction"},
    "cli": {"bulkrt"},
    "launch": {"cli"},
    "__main__": {"launch"},
    "__init__": set(),
}
#: the sandbox's pure state modules: all the simulation may import of the sandbox (never its
#: aiohttp app, server, loopback or inspection routes)
SANDBOX_STATE = {"state", "config", "limits", "faults", "clock", "problems", "world", "windows",
                 "auth", "oauth1", "oauth2"}  # fmt: skip
#: what importing the pure core must not load: the network, an event loop, the shell's tools
NOT_IN_CORE = {"aiohttp", "anyio", "asyncio", "aiolimiter", "structlog", "trio", "redis", "rich",
               "click", "yarl", "multidict"}  # fmt: skip


def wing(module: str) -> str:
    """The wing of a module path: ``core/scheduler.py`` -> ``core``, ``errors.py`` -> ``errors``."""
    return module.split("/")[0].removesuffix(".py")


@functools.cache
def nodes(module: str) -> tuple[ast.AST, ...]:
    """Every node of the syntax tree of ``bulkrt/MODULE``, parsed once per test process: most
    tests here walk every module, and parsing the package again for each took seconds of CPU."""
    path = PACKAGE / module
    return tuple(ast.walk(ast.parse(path.read_text(), str(path))))


def bulkrt_imports(module: str) -> set[str]:
    """The wings and foundation modules ``module`` imports (``bulkrt.core.items`` -> ``core``)."""
    found: set[str] = set()
    for node in nodes(module):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "bulkrt":
                names = [f"bulkrt.{alias.name}" for alias in node.names]
            else:
                names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "bulkrt":
                found.add(parts[1] if len(parts) > 1 and parts[1] != "__version__" else "bulkrt")
    return found


def test_the_package_was_found() -> None:
    """The rules below look at the real package (a wrong path would check nothing)."""
    assert {"core/scheduler.py", "shell/dispatcher.py", "sandbox/state.py"} <= set(MODULES)
    assert {wing(m) for m in MODULES} <= set(MAY_IMPORT)


@pytest.mark.parametrize("module", MODULES)
def test_wing_rules(module: str) -> None:
    """Each module imports only its own wing and the wings its wing may use."""
    own = wing(module)
    used = bulkrt_imports(module) - {own}
    assert used <= MAY_IMPORT[own], f"{module} imports {sorted(used - MAY_IMPORT[own])}"


def test_importing_the_core_loads_no_io() -> None:
    """In a fresh interpreter, importing every core module loads no network or event-loop library
    and no bulkrt module outside the core and the pure foundation (a transitive check)."""
    core = [m.removesuffix(".py").replace("/", ".") for m in MODULES if wing(m) == "core"]
    script = (
        "import importlib, json, sys\n"
        f"for name in {core!r}: importlib.import_module('bulkrt.' + name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    loaded = json.loads(subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True
    ).stdout)  # fmt: skip
    assert len(core) > 10
    assert "bulkrt.core.scheduler" in loaded
    assert not {n for n in loaded if n.split(".")[0] in NOT_IN_CORE}
    pure = ("bulkrt", "bulkrt.errors", "bulkrt.redaction", "bulkrt.core")
    assert [n for n in loaded if n.startswith("bulkrt") and not n.startswith(pure)] == []


def test_the_wings_form_layers() -> None:
    """The rules give the wings one direction: no wing may import, even through others, a wing
    that may import it (no cycle between wings)."""

    def reach(start: str) -> set[str]:
        seen: set[str] = set()
        todo = [start]
        while todo:
            for used in MAY_IMPORT[todo.pop()] - {"bulkrt"} - seen:
                seen.add(used)
                todo.append(used)
        return seen

    assert [w for w in MAY_IMPORT if w != "bulkrt" and w in reach(w)] == []


#: command modules that other command modules may import: what the commands share, and the
#: sandbox command's accounts-file writer, which the demo reuses
SHARED_COMMANDS = {"options", "outputs", "sandbox"}


@pytest.mark.parametrize("module", [m for m in MODULES if wing(m) == "commands"])
def test_a_command_imports_no_other_command(module: str) -> None:
    """Nothing imports a command but `bulkrt.cli` (by name, on first use): a command module
    imports of its wing only what the commands share."""
    used: set[str] = set()
    for node in nodes(module):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bulkrt.commands."):
            used.add((node.module or "").split(".")[2])
    assert used <= SHARED_COMMANDS, module
    if module != "commands/demo.py":
        assert "sandbox" not in used, module


def loaded_by(*modules: str) -> set[str]:
    """The bulkrt modules a fresh interpreter has loaded after importing ``modules``."""
    script = (
        "import importlib, json, sys\n"
        f"for name in {list(modules)!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(n for n in sys.modules if n.startswith('bulkrt'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True
    )
    return set(json.loads(done.stdout))


def test_the_runtime_never_loads_the_sandbox() -> None:
    """Importing every module outside the sandbox (the simulation, the demo and the sandbox
    command aside) loads no sandbox module, and `bulkrt sandbox` loads neither the shell nor the
    ledger. (`bulkrt run` loads the simulation only for its estimate, when it needs one.)"""
    runtime = [
        "bulkrt." + m.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        for m in MODULES
        if wing(m) not in {"sandbox", "simulation"}
        and m not in {"commands/demo.py", "commands/sandbox.py", "__main__.py"}
    ]
    loaded = loaded_by(*runtime)
    assert {"bulkrt.shell.runner", "bulkrt.commands.run"} <= loaded
    assert [n for n in loaded if n.startswith("bulkrt.sandbox")] == []
    serving = loaded_by("bulkrt.commands.sandbox")
    assert "bulkrt.sandbox.server" in serving
    assert [n for n in serving if n.startswith(("bulkrt.shell", "bulkrt.ledger"))] == []


def test_no_two_modules_share_a_name() -> None:
    """A module's name says which one it is: no two files (``__init__`` aside) share one."""
    names = Counter(Path(m).stem for m in MODULES if not m.endswith("__init__.py"))
    assert [n for n, count in names.items() if count > 1] == []


def test_no_two_classes_share_a_name() -> None:
    """A class name says which one it is, across the whole package."""
    classes: Counter[str] = Counter()
    for module in MODULES:
        for node in nodes(module):
            if isinstance(node, ast.ClassDef):
                classes[node.name] += 1
    assert [n for n, count in classes.items() if count > 1] == []


#: exceptions deliberately outside `BulkrtError`'s tree, and why
OUTSIDE_THE_TREE = {
    # raised inside aiohttp's middleware chain, where only aiohttp's own connection errors are
    # taken for a dropped connection; the client turns it into a network failure like any other
    "_SilentResendRefused": "shell/client.py",
    # the exit of a clean stop before a command sends: a SystemExit (the interpreter's way out),
    # told apart where Python ignores an exception (`bulkrt.launch`)
    "_Stopped": "launch.py",
}


def classes() -> dict[str, tuple[str, ast.ClassDef]]:
    """Every class the package defines, by name (names are unique: see above), with its module."""
    return {
        node.name: (module, node)
        for module in MODULES
        for node in nodes(module)
        if isinstance(node, ast.ClassDef)
    }


def base_names(node: ast.ClassDef) -> list[str]:
    """The last part of each base's name: ``aiohttp.ClientConnectionError`` -> that class."""
    return [
        base.id if isinstance(base, ast.Name) else base.attr
        for base in node.bases
        if isinstance(base, ast.Name | ast.Attribute)
    ]


def exceptions() -> dict[str, tuple[str, list[str]]]:
    """The package's exception classes with their module and ancestors (nearest first), found by
    their bases: a built-in exception, a library's ``...Error``, or another of the package's."""
    defined = classes()

    def ancestors(name: str) -> list[str]:
        found: list[str] = []
        for base in base_names(defined[name][1]) if name in defined else []:
            found += [base, *ancestors(base)]
        return found

    def is_exception(name: str) -> bool:
        if name in defined:
            return any(is_exception(base) for base in base_names(defined[name][1]))
        builtin = getattr(builtins, name, None)
        if isinstance(builtin, type):
            return issubclass(builtin, BaseException)
        return name.endswith(("Error", "Exception"))

    return {
        name: (module, ancestors(name))
        for name, (module, _) in defined.items()
        if is_exception(name)
    }


def test_the_exception_walker_finds_them() -> None:
    """The walk finds the known exceptions, public, private, and one based on a library's."""
    found = exceptions()
    assert {"BulkrtError", "InputError", "LedgerLockedError", "RefreshLost", "_BadInput"} <= set(
        found
    )
    assert found["RefreshLost"][1][:2] == ["ReauthorizationNeeded", "BulkrtError"]
    assert "_SilentResendRefused" in found and "Problem" not in found


def test_every_exception_is_in_the_tree() -> None:
    """Every exception bulkrt defines derives from `BulkrtError`, but the few named above."""
    outside = {
        name: module
        for name, (module, ancestors) in exceptions().items()
        if name != "BulkrtError" and "BulkrtError" not in ancestors
    }
    assert outside == OUTSIDE_THE_TREE


def test_every_shared_exception_lives_in_errors() -> None:
    """An exception lives in `bulkrt.errors` unless it is private to its module (a leading
    underscore, and no other module imports it)."""
    found = exceptions()
    private = {name for name, (module, _) in found.items() if name.startswith("_")}
    assert [n for n, (m, _) in found.items() if n not in private and m != "errors.py"] == []
    for module in MODULES:
        for node in nodes(module):
            if isinstance(node, ast.ImportFrom):
                assert not {alias.name for alias in node.names} & private, module


def test_the_simulation_uses_only_the_sandbox_state() -> None:
    """The simulation imports only the sandbox's pure state modules, and importing it (in a
    fresh interpreter) loads none of the sandbox's web modules, directly or transitively."""
    for module in (m for m in MODULES if wing(m) == "simulation"):
        for node in nodes(module):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "bulkrt.sandbox"
            ):
                assert (node.module or "").split(".")[2:3][0] in SANDBOX_STATE, (
                    module,
                    node.module,
                )
    script = (
        "import importlib, json, sys, pkgutil, bulkrt.simulation as s\n"
        "for m in pkgutil.iter_modules(s.__path__):\n"
        "    importlib.import_module(s.__name__ + '.' + m.name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    loaded = json.loads(subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True
    ).stdout)  # fmt: skip
    assert "bulkrt.simulation.harness" in loaded and "bulkrt.sandbox.state" in loaded
    web = {f"bulkrt.sandbox.{name}" for name in ("app", "server", "loopback", "inspection")}
    assert web.isdisjoint(loaded)
