"""Where personalize keeps things on disk.

One directory holds everything fetched or derived from public data: the downloaded source files
(``downloads/``) and the normalised parquet tables (one folder per data set). It defaults to the
user cache directory and is overridden by the ``PERSONALIZE_DATA`` environment variable.

>>> import os
>>> os.environ["PERSONALIZE_DATA"] = "/tmp/pz-doctest"
>>> str(data_dir())
'/tmp/pz-doctest'
>>> str(downloads_dir())
'/tmp/pz-doctest/downloads'
>>> del os.environ["PERSONALIZE_DATA"]
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV_VAR = "PERSONALIZE_DATA"


def data_dir() -> Path:
    """The root data directory: ``$PERSONALIZE_DATA`` or ``<user cache dir>/personalize/data``."""
    override = os.environ.get(DATA_ENV_VAR)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return platformdirs.user_cache_path("personalize") / "data"


def downloads_dir() -> Path:
    """Where verified source files (package wheels, zips) are cached."""
    return data_dir() / "downloads"


def dataset_dir(name: str) -> Path:
    """Where the normalised parquet tables of data set ``name`` live."""
    return data_dir() / name


def builtin_suites_dir() -> Path:
    """The folder of task-suite definitions shipped with the project.

    In a source checkout (editable install) it is the top-level ``tasks/`` folder; in a built wheel
    the same files are packaged as ``personalize/_builtin_tasks``.
    """
    packaged = Path(__file__).resolve().parent / "_builtin_tasks"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[1] / "tasks"
