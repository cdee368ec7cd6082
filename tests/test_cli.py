"""The `bulkrt` command line as an operator starts it: console script and `python -m bulkrt`."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from bulkrt.cli import COMMANDS, main


def test_python_m_bulkrt_help_lists_the_commands_and_the_authorisation_rule() -> None:
    """`python -m bulkrt --help` exits 0 and tells the operator about account authorisation."""
    proc = subprocess.run(
        [sys.executable, "-m", "bulkrt", "--help"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "authorisation" in proc.stdout
    assert "Commands:" in proc.stdout


def test_unknown_command_is_a_usage_error() -> None:
    """An unknown subcommand exits 2, the README's code for bad usage."""
    proc = subprocess.run(
        [sys.executable, "-m", "bulkrt", "no-such-command"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "no-such-command" in proc.stderr


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_help_ends_with_examples_of_itself(name: str) -> None:
    """`bulkrt NAME --help` ends with an Examples section whose lines run `bulkrt NAME` (or the
    command that follows it)."""
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0, result.output
    examples = result.output.split("Examples:\n", 1)[1].splitlines()
    assert examples and any(f"bulkrt {name}" in line for line in examples)
