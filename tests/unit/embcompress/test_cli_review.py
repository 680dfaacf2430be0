"""Review of the CLI: what the progress bar leaves on a terminal."""

import io

from embcompress.cli.progress import Bar, progress_bar


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_bar_that_never_drew_leaves_no_blank_line():
    # e.g. fit-hash --method hash (no progress reported) or an error before any progress:
    # closing wrote a lone newline, an empty line before the summary or the error line
    s = _Tty()
    Bar("fit-hash user", enabled=True, stream=s).close()
    assert s.getvalue() == ""


def test_bar_that_drew_ends_its_line():
    s = _Tty()
    bar = Bar("export", enabled=True, stream=s)
    bar(1, 1)
    bar.close()
    assert s.getvalue().startswith("\rexport [") and s.getvalue().endswith("\n")


def test_quiet_and_pipes_write_nothing():
    for enabled, stream in ((False, _Tty()), (True, io.StringIO())):
        bar = Bar("mine", enabled=enabled, stream=stream)
        bar(1, 2)
        bar.close()
        assert stream.getvalue() == ""
    with progress_bar("demo", quiet=True) as bar:
        bar(1, 1)
