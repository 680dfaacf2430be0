"""Analysis: quantization-error and collision reports, the CTR evaluation harness, plots.

Reads what ``embcompress`` and ``learned_hash`` produce; nothing imports this package.
"""
