"""The `bulkrt` command line as an operator starts it: console script and `python -m bulkrt`."""

from __future__ import annotations

import subprocess
import sys


def test_python_m_bulkrt_help_lists_the_commands_and_the_authorisation_rule() -> None:
    """`python -m bulkrt --help` exits 0 and tells the operator about account authorisation."""
    proc = subprocess.run(
        [sys.executable, "-m", "bulkrt", "--help"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "authorisation" in proc.stdout
    assert "Commands:" in proc.stdout


def test_unknown_command_is_a_usage_error() -> None:
    """An unknown subcommand exits 2, the CONTRACT's code for bad usage."""
    proc = subprocess.run(
        [sys.executable, "-m", "bulkrt", "no-such-command"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "no-such-command" in proc.stderr
