"""Every error the library raises on purpose lives here.

All of them derive from :class:`PersonalizeError`, so a caller can catch the whole family at once,
and each also derives from the built-in exception a Python user would expect (``ValueError`` for bad
arguments, ``FileNotFoundError`` for missing data), so ordinary ``except`` clauses keep working.

>>> try:
...     raise ConfigError("shots must be >= 1, got 0")
... except ValueError as error:
...     print(type(error).__name__, "-", error)
ConfigError - shots must be >= 1, got 0
"""

from __future__ import annotations


class PersonalizeError(Exception):
    """Base class of every error raised by personalize."""


class ConfigError(PersonalizeError, ValueError):
    """A configuration field or function argument has an invalid value."""


class DataError(PersonalizeError):
    """Something is wrong with a data set: its source, its cache or its contents."""


class DataNotFetchedError(DataError, FileNotFoundError):
    """A data set was asked for before it was fetched into the data directory."""


class DataFetchError(DataError, OSError):
    """Downloading a data source failed (offline, index unreachable, package missing)."""


class ChecksumError(DataError):
    """A file's sha256 differs from the pinned value: it is corrupt, truncated or not the file expected."""


class SchemaError(DataError, ValueError):
    """A frame lacks a required column or holds values of the wrong kind."""


class EpisodeError(PersonalizeError, ValueError):
    """A task cannot supply the episode asked for (too few examples, too few classes)."""


class SuiteError(PersonalizeError, ValueError):
    """A task-suite definition is missing or invalid."""


class CheckpointError(PersonalizeError, ValueError):
    """A checkpoint folder is missing, incomplete, of another format, or does not fit its config."""


class SaveError(PersonalizeError, OSError):
    """A save cannot go where asked: the path is a file, a folder holding files the save did not write,
    a saved model that ``overwrite=True`` was not given for, or a folder that cannot be written."""


class EncoderError(PersonalizeError):
    """The encoder cannot be loaded, or it is not the encoder a checkpoint was trained with."""


class MissingDependencyError(PersonalizeError, ImportError):
    """An optional package a feature needs is not installed; the message names the extra to install."""


class BankError(PersonalizeError, ValueError):
    """A state bank is missing, damaged, of another model, or cannot be written."""


class EngineError(PersonalizeError, RuntimeError):
    """A distributed engine cannot run a batch job: no cluster at the address, a worker that cannot
    load the model or loads another one, a worker that died."""


def require(condition: bool, message: str, error: type[PersonalizeError] = ConfigError) -> None:
    """Raise ``error(message)`` unless ``condition`` holds: the one-line guard used by every config.

    >>> require(3 > 1, "never raised")
    >>> require(0 > 1, "ways must be >= 2, got 0")
    Traceback (most recent call last):
    ...
    personalize.errors.ConfigError: ways must be >= 2, got 0
    """
    if not condition:
        raise error(message)
