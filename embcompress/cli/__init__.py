"""The ``embcompress`` command line: one module per verb, each a thin wrapper over a library call."""

from __future__ import annotations

import os
import stat
from pathlib import Path

# what os.stat says a path is, for the file types an artifact or a model cannot be read from
_NOT_FILES = ((stat.S_ISFIFO, "a pipe"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
              (stat.S_ISSOCK, "a socket"))


def input_path(path: Path, param: str | None = None) -> Path:
    """A file path the user gave for reading: '~' expanded (quoted, or after '=' as in
    --id-map NAME=~/x, it reaches the command as is), and refused (bad input, exit 1) when it names
    a pipe (`<(cat t.embc)`), a device or a socket: files are mapped and read at offsets, which
    those cannot give (the readers called a pipe a truncated file, and waited forever on a FIFO
    with no writer). A missing path or a folder is left to the reader, whose errors name it."""
    from ..errors import ConfigError

    path = Path(path).expanduser()
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return path
    for test, what in _NOT_FILES:
        if test(mode):
            raise ConfigError(f"{str(path)!r} is {what}, not a file: embcompress maps its input files and reads them "
                              f"at offsets, which {what} cannot give. Save it to a file first and pass that file's "
                              f"path.", param=param)
    return path
