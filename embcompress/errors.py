"""One error hierarchy for all three packages.

Messages follow one grammar (what, where, what was got, what to do), as scikit-learn's do:
"The 'block_size' parameter of MXConfig must be a multiple of 2. Got 31 instead."
The CLI maps each class to an exit code; library code only raises.
"""

from __future__ import annotations


class EmbcompressError(Exception):
    """Base class of every error this toolkit raises on purpose."""

    exit_code = 1


class ConfigError(EmbcompressError, ValueError):
    """A parameter or input value is invalid (bad input: exit code 1)."""

    def __init__(self, *args, param: str | None = None):
        super().__init__(*args)
        self.param = param  # the library parameter at fault, if one (the CLI names the flag that sets it)


class ArtifactError(EmbcompressError):
    """A file is not a readable artifact: missing, truncated, foreign or malformed."""

    exit_code = 3


class MissingArtifactError(ArtifactError):
    """No file at the path given: bad input (exit code 1), not a damaged file (3)."""

    exit_code = 1


class ChecksumError(ArtifactError):
    """A section or header of an artifact does not match its recorded checksum."""


class VersionError(ArtifactError):
    """An artifact was written by a newer, incompatible major version of the container."""


class NotFittedError(EmbcompressError, AttributeError):
    """A learned stage was used before ``fit``."""


class BackendUnavailableError(EmbcompressError, ImportError):
    """An optional backend (compiled kernel, torch, Spark, FAISS, ...) cannot be loaded."""


def param_error(param: str, owner: str, must: str, got: object) -> ConfigError:
    """Build a ConfigError in the project's grammar.

    >>> str(param_error("block_size", "MXConfig", "be a multiple of 2", 31))
    "The 'block_size' parameter of MXConfig must be a multiple of 2. Got 31 instead."
    """
    return ConfigError(f"The {param!r} parameter of {owner} must {must}. Got {got!r} instead.", param=param)
