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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from personalize.errors import CheckpointError, PersonalizeError, SaveError, require


def sha256_file(path: str | Path) -> str:
    """The hex sha256 of a file, read in chunks."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def inside(folder: str | Path, name: object, *, where: str, fix: str = "restore the file or save it again",
           error: type[PersonalizeError] = CheckpointError) -> Path:
    """``folder / name`` for a ``name`` read from a saved file or a config, refused unless it stays in ``folder``.

    A name that is not a non-empty string, is absolute, or climbs out with ``..`` raises ``error``
    naming ``where`` it was read from, so an edited file never makes personalize read or write
    outside the folder it describes.

    >>> inside("/models/task", "state.safetensors", where="task.json").as_posix()
    '/models/task/state.safetensors'
    >>> inside("/models/task", "../../etc/passwd", where="task.json (checksums)")
    Traceback (most recent call last):
    ...
    personalize.errors.CheckpointError: task.json (checksums) names '../../etc/passwd', which is not a path \
inside /models/task (a relative path without '..'); restore the file or save it again
    """
    pieces = name.replace("\\", "/").split("/") if isinstance(name, str) and name else [""]
    if pieces[0] == "" or ".." in pieces:  # not a string, empty, absolute, or climbing out
        raise error(f"{where} names {name!r}, which is not a path inside {folder} (a relative path without '..'); "
                    f"{fix}")
    return Path(folder) / str(name)


@dataclass(frozen=True)
class SavedKind:
    """What one kind of save writes at the top of its folder, so a later save knows what it may replace.

    A folder "holds" this kind when its ``marker`` file exists (with ``"format": format`` inside, when
    ``format`` is given) and every entry in it is one of ``files``: a folder with anything else in it
    was not written by this save alone, and replacing it would delete what the save did not write.
    """

    what: str
    """Words for messages, e.g. "saved task"."""
    marker: str
    """The file every such folder holds, e.g. "task.json"."""
    files: frozenset[str]
    """Every name the save writes at the folder's top level (the marker included)."""
    format: str | None = None
    """The ``format`` value of the marker's JSON; None: the marker's presence is enough."""

    def holds(self, folder: Path) -> bool:
        """Whether ``folder`` is a saved folder of this kind and nothing else."""
        marker = folder / self.marker
        if not marker.is_file() or any(entry.name not in self.files for entry in folder.iterdir()):
            return False
        if self.format is None:
            return True
        try:
            document = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return False
        return isinstance(document, dict) and document.get("format") == self.format


def check_save_target(final: str | Path, kind: SavedKind | None = None, *, overwrite: bool = False) -> None:
    """Raise SaveError unless a save of ``kind`` may write folder ``final`` (see :func:`staged_folder`).

    Call it before long work (training) whose result is saved at the end, to fail early.
    """
    final = Path(final)
    what = kind.what if kind is not None else "folder"
    if final.is_symlink() or (final.exists() and not final.is_dir()):
        raise SaveError(f"{final} is a file, not a folder: nothing was written; give the {what} a new folder path")
    if not final.exists():
        parent = next(folder for folder in final.parents if folder.exists())
        require(parent.is_dir(), f"cannot write {final}: {parent} is a file, not a folder; "
                                 "save to a folder path you can write to", SaveError)
        return
    entries = sorted(entry.name for entry in final.iterdir())
    if not entries:  # an empty folder: nothing in it to lose
        return
    if kind is not None and not kind.holds(final):
        foreign = [name for name in entries if name not in kind.files] or entries
        raise SaveError(f"{final} already exists and is not a {kind.what} (it holds {', '.join(foreign[:5])}): "
                        f"nothing was written; save to a new or empty folder (personalize never replaces "
                        f"files it did not write)")
    if not overwrite:
        raise SaveError(f"{final} already holds a {what}: nothing was written; pass overwrite=True to replace it, "
                        "or save to a new folder")


@contextlib.contextmanager
def staged_folder(final: str | Path, kind: SavedKind | None = None, *, overwrite: bool = False,
                  complete_marker: str | None = None) -> Iterator[Path]:
    """Write a folder's files into a hidden staging folder, then put it at ``final`` in one rename.

    What may be at ``final`` already (checked before the block runs and again before the rename):

    - nothing, or an empty folder: written;
    - a folder holding a save of ``kind`` and nothing else: replaced when ``overwrite`` is true,
      else refused;
    - anything else (a file, a link, a folder with other files): refused with SaveError. With
      ``kind=None`` (folders the library owns, such as the data cache) ``overwrite=True`` replaces
      any folder.

    If the block raises, or the folder cannot be written, the staging folder (and any parent folder
    this call created) is deleted and ``final`` is untouched, so a failure never leaves a
    half-written folder nor loses an old one. An old folder is renamed aside (under a ``.partial-``
    name that nothing reads), the new one renamed in, and only then the old one deleted.
    ``complete_marker`` names a file whose presence in ``final`` means a concurrent writer already
    finished: then its folder is kept. An OSError while writing becomes a SaveError naming ``final``.
    """
    final = Path(final)
    check_save_target(final, kind, overwrite=overwrite)
    created = [folder for folder in (final.parent, *final.parent.parents) if not folder.exists()]
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".partial-{final.name}-", dir=final.parent))
    except OSError as error:
        _remove_empty(created)
        raise SaveError(f"cannot write {final}: {error.strerror or error}; save to a folder you can write to") \
            from error
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; the final folder should not be
        yield staging
        check_save_target(final, kind, overwrite=overwrite)  # something may have appeared meanwhile
        _put_in_place(staging, final, complete_marker)
        shutil.rmtree(staging, ignore_errors=True)  # left only when a concurrent writer's folder was kept
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        _remove_empty(created)
        # A failed write (or a nested save's, which names our staging folder) becomes one naming ``final``.
        cause = error.__cause__ if isinstance(error, SaveError) else error
        if isinstance(cause, OSError) and not isinstance(cause, SaveError):
            raise SaveError(f"saving {final} failed: {cause}; nothing was written "
                            "(free some space, or save to a folder you can write to)") from cause
        raise


def _put_in_place(staging: Path, final: Path, complete_marker: str | None) -> None:
    """Rename ``staging`` to ``final``; an old ``final`` is deleted only once the new one is in place."""
    discarded: Path | None = staging.with_name(staging.name + "-old")
    try:
        os.replace(final, discarded)
    except FileNotFoundError:
        discarded = None
    try:
        os.replace(staging, final)
    except OSError:
        if complete_marker is not None and (final / complete_marker).is_file():
            return  # a concurrent writer finished first: its folder stays (ours is deleted by the caller)
        if discarded is not None and not final.exists():
            os.replace(discarded, final)  # put the old folder back
            discarded = None
        raise
    finally:
        if discarded is not None:
            shutil.rmtree(discarded, ignore_errors=True)


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders a failed save created, innermost first, as long as they are empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def save_checked_tensors(folder: Path, file_name: str, tensors: Mapping[str, Any]) -> str:
    """Save ``tensors`` as safetensors file ``folder/file_name`` (CPU, contiguous); return its sha256."""
    from safetensors.torch import save_file

    save_file({name: value.detach().cpu().contiguous() for name, value in tensors.items()}, str(folder / file_name))
    return sha256_file(folder / file_name)


def load_checked_tensors(folder: str | Path, file_name: str, document: Mapping[str, Any], *,
                         what: str, device: str = "cpu", config_name: str) -> dict[str, Any]:
    """The tensors of ``folder/file_name``, checked against the sha256 recorded in ``document``.

    ``document["checksums"][file_name]`` must match the file when the document has checksums (every
    save since format version 2 does); an older document without them is loaded unchecked. Refused
    with a CheckpointError naming the file: missing, changed since it was saved, not a safetensors
    file, or holding NaN or infinite values.
    """
    from safetensors.torch import load_file

    path = Path(folder) / file_name
    if not path.is_file():
        raise CheckpointError(f"{what} {folder} lacks {file_name}; save it again")
    checksums = document.get("checksums")
    version = document.get("format_version", 1)
    if checksums is None and isinstance(version, int) and version >= 2:
        raise CheckpointError(f"{Path(folder) / config_name} records no checksum for {file_name}; "
                              "restore the folder or save it again")
    if checksums is not None:
        for recorded in checksums if isinstance(checksums, dict) else ():
            inside(folder, recorded, where=f"{Path(folder) / config_name} (checksums)")
        expected = checksums.get(file_name) if isinstance(checksums, dict) else None
        if expected is None:
            raise CheckpointError(f"{Path(folder) / config_name} records no checksum for {file_name}; save it again")
        actual = sha256_file(path)
        if actual != expected:
            raise CheckpointError(f"{path} was changed or corrupted since it was saved (sha256 {actual[:12]}, "
                                  f"{config_name} records {expected[:12]}); restore the folder or save it again")
    try:
        tensors = load_file(str(path), device=device)
    except Exception as error:  # a truncated, foreign or renamed file: safetensors' own error names no file
        raise CheckpointError(f"{path} is not a readable safetensors file ({error}); restore it or save it again") \
            from error
    for name, value in tensors.items():
        if value.is_floating_point() and not bool(value.isfinite().all()):
            raise CheckpointError(f"{path}: tensor {name!r} holds NaN or infinite values; the file is corrupt: "
                                  "restore it or save it again")
    return tensors


def read_json_document(folder: str | Path, file_name: str, expected_format: str, version: int | tuple[int, ...],
                       what: str) -> dict[str, Any]:
    """The parsed JSON file ``file_name`` describing a saved ``what`` in ``folder``, checked for format and version.

    ``version`` is the format version to accept, or a tuple of them (a loader that still reads older
    ones). Every failure is a CheckpointError naming the file: missing, not JSON, or another format.
    """
    versions = (version,) if isinstance(version, int) else tuple(version)
    config_file = Path(folder) / file_name
    if not config_file.is_file():
        raise CheckpointError(f"{folder} is not a {what}: {file_name} is missing")
    try:
        document = json.loads(config_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{config_file} is not valid JSON: {error}") from error
    if not isinstance(document, dict) or document.get("format") != expected_format \
            or document.get("format_version") not in versions:
        found = (f"format {document.get('format')!r} v{document.get('format_version')}"
                 if isinstance(document, dict) else type(document).__name__)
        raise CheckpointError(f"{config_file} is not a {expected_format} "
                              f"{' or '.join(f'v{v}' for v in versions)} file (found {found}); "
                              "it was written by another program or another version of personalize")
    return document


@contextlib.contextmanager
def staged_file(final: str | Path) -> Iterator[Path]:
    """Write one file under a hidden temporary name beside ``final``, then rename it into place.

    The data is flushed to disk before the rename, so after a crash ``final`` is either absent, the
    old file, or the whole new file: never a prefix of it. If the block raises, the temporary file is
    removed and ``final`` is untouched.

    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "part.bin"
    >>> with staged_file(target) as staging:
    ...     _ = staging.write_bytes(b"abc")
    >>> target.read_bytes(), sorted(p.name for p in target.parent.iterdir())
    (b'abc', ['part.bin'])
    """
    final = Path(final)
    handle, name = tempfile.mkstemp(prefix=f".partial-{final.name}-", dir=final.parent)
    os.close(handle)
    staging = Path(name)
    try:
        yield staging
        with open(staging, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(staging, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()
