"""A progress bar for long CLI work: drawn on a terminal, silent in a pipe or under --quiet.

Library functions take ``progress(done, total)`` callbacks and never print; the CLI passes one of
these.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager


class Bar:
    def __init__(self, label: str, enabled: bool, stream=None):
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = enabled and _is_terminal(self.stream)
        self._last = 0.0
        self._drawn = False
        self._start = time.perf_counter()

    def __call__(self, done: float, total: float) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._last < 0.1 and done < total:
            return
        self._last = now
        frac = 0.0 if not total else min(1.0, done / total)
        width = 30
        fill = int(frac * width)
        self.stream.write(
            f"\r{self.label} [{'#' * fill}{'.' * (width - fill)}] {frac:6.1%} {now - self._start:6.1f}s"
        )
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:  # end the bar's line; a bar never drawn leaves no blank line
            self.stream.write("\n")
            self.stream.flush()


def _is_terminal(stream) -> bool:
    # no stderr at all (closed with `2>&-`, or a daemon's: sys.stderr is None) or a closed one: no bar
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


@contextmanager
def progress_bar(label: str, *, quiet: bool = False):
    bar = Bar(label, enabled=not quiet)
    try:
        yield bar
    finally:
        bar.close()
