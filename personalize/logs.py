"""Logging: the library reports through the standard ``logging`` module under the ``personalize`` logger.

It is quiet by default (the package adds only a ``NullHandler``; INFO and DEBUG records go nowhere
until an application configures logging). Turn it on as for any library, with
``logging.basicConfig(level=logging.INFO)``, or for a while with :func:`show_logs`, which the
``personalize`` command uses for ``-v`` (INFO) and ``-vv`` (DEBUG).

>>> import io
>>> stream = io.StringIO()
>>> with show_logs(verbosity=1, stream=stream, fmt="%(name)s: %(message)s"):
...     get_logger("personalize.example").info("shown")
>>> get_logger("personalize.example").info("quiet again")
>>> stream.getvalue()
'personalize.example: shown\\n'
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import TextIO

LOGGER_NAME = "personalize"
DEFAULT_FORMAT = "[%(name)s] %(message)s"


def get_logger(name: str = LOGGER_NAME) -> logging.Logger:
    """The logger of a library module (``get_logger(__name__)``), a child of ``personalize``."""
    return logging.getLogger(name)


@contextlib.contextmanager
def show_logs(verbosity: int = 1, stream: TextIO | None = None, fmt: str = DEFAULT_FORMAT) -> Iterator[None]:
    """Print the ``personalize`` logger's records while the block runs: INFO and up for ``verbosity`` 1,
    DEBUG for 2 or more, nothing added for 0. ``stream`` defaults to stderr."""
    if verbosity <= 0:
        yield
        return
    logger = logging.getLogger(LOGGER_NAME)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(logging.Formatter(fmt))
    level = logging.INFO if verbosity == 1 else logging.DEBUG
    handler.setLevel(level)
    previous = logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > level:
        logger.setLevel(level)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


__all__ = ["LOGGER_NAME", "get_logger", "show_logs"]
