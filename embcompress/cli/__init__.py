"""The ``embcompress`` command line: one module per verb, each a thin wrapper over a library call."""
