"""Replacing a file so that a crash leaves the old content or the new, never a mix: write a
temporary file beside it, fsync, rename over it, fsync the directory."""

from __future__ import annotations

import gzip
import io
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TextIO, cast

__all__ = ["fsync_directory", "replacing"]


def fsync_directory(directory: Path) -> None:
    """Make a rename or a new entry in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def replacing(path: Path, *, mode: int | None = None, compress: bool = False) -> Iterator[TextIO]:
    """A UTF-8 text stream whose content replaces ``path`` when the block ends without error.

    ``mode`` defaults to what the umask gives a new file; ``compress`` writes gzip. On failure
    ``path`` is left as it was and the temporary file is removed. A symbolic link is written
    through: its target is replaced, the link kept (as a shell's ``>`` does, and what the
    commands' checks of an existing file looked at).

    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> with replacing(target) as out:
    ...     _ = out.write("hello\\n")
    >>> target.read_text()
    'hello\\n'
    """
    path = Path(os.path.realpath(path))  # through a link, to the file it names
    directory = path.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, _default_mode() if mode is None else mode)
        with os.fdopen(fd, "wb") as raw:
            packed = cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="wb")) if compress else raw
            with io.TextIOWrapper(packed, encoding="utf-8", newline="") as text:
                yield text
                text.flush()
                if packed is not raw:
                    packed.close()
                raw.flush()
                os.fsync(raw.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_directory(directory)
