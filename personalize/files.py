"""File helpers shared by the data cache, the encoder loader and checkpoints.

>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> with staged_folder(root / "model") as staging:
...     _ = (staging / "config.json").write_text("{}")
>>> sorted(p.name for p in (root / "model").iterdir())
['config.json']
>>> sha256_file(root / "model" / "config.json")[:12]
'44136fa355b3'
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from personalize.errors import CheckpointError


def sha256_file(path: str | Path) -> str:
    """The hex sha256 of a file, read in chunks."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


@contextlib.contextmanager
def staged_folder(final: str | Path, *, complete_marker: str | None = None) -> Iterator[Path]:
    """Write a folder's files into a hidden staging folder, then put it at ``final`` in one rename.

    If the block raises, the staging folder is deleted and ``final`` is untouched, so a crash never
    leaves a half-written folder where readers look. A folder cannot replace a non-empty one in a
    single rename, so an existing ``final`` is first renamed aside (under a ``.partial-`` name that
    nothing reads) and deleted once the new folder is in place. ``complete_marker`` names a file
    whose presence in ``final`` means a concurrent writer already finished: then its folder is kept.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".partial-{final.name}-", dir=final.parent,
                                     ignore_cleanup_errors=True) as staging_name:
        staging = Path(staging_name)
        staging.chmod(0o755)  # mkdtemp makes it private; the final folder should not be
        yield staging
        discarded = staging.with_name(staging.name + "-old")
        with contextlib.suppress(FileNotFoundError):
            os.replace(final, discarded)
        try:
            os.replace(staging, final)
        except OSError:
            if complete_marker is None or not (final / complete_marker).is_file():
                raise
        finally:
            shutil.rmtree(discarded, ignore_errors=True)


def read_json_document(folder: str | Path, file_name: str, expected_format: str, version: int,
                       what: str) -> dict[str, Any]:
    """The parsed JSON file ``file_name`` describing a saved ``what`` in ``folder``, checked for format and version.

    Every failure is a CheckpointError naming the file: missing, not JSON, or another format.
    """
    config_file = Path(folder) / file_name
    if not config_file.is_file():
        raise CheckpointError(f"{folder} is not a {what}: {file_name} is missing")
    try:
        document = json.loads(config_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{config_file} is not valid JSON: {error}") from error
    if not isinstance(document, dict) or document.get("format") != expected_format \
            or document.get("format_version") != version:
        raise CheckpointError(f"{config_file} is not a {expected_format} v{version} file")
    return document
