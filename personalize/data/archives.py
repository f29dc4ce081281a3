"""Reading named files out of zip and tar archives, nested ones included, without extracting them.

A wheel is a zip and an sdist a gzipped tar; some data sits in an archive inside the archive
(VADER's ground truth is ``hutto_ICWSM_2014.tar.gz`` inside the ``vaderSentiment`` sdist). A member
path names such a file with ``!/`` between the levels:
``"pkg-1.0/data.tar.gz!/data/file.txt"`` is ``data/file.txt`` inside ``pkg-1.0/data.tar.gz``.
An archive's kind is told by its name (``.zip``/``.whl`` or ``.tar.gz``/``.tgz``/``.tar``).

>>> import io, zipfile
>>> inner = io.BytesIO()
>>> with zipfile.ZipFile(inner, "w") as opened:
...     opened.writestr("data/file.txt", "hello")
>>> outer = io.BytesIO()
>>> with zipfile.ZipFile(outer, "w") as opened:
...     opened.writestr("pkg/inner.zip", inner.getvalue())
>>> read_paths(outer.getvalue(), "outer.whl", ["pkg/inner.zip!/data/file.txt"])
{'pkg/inner.zip!/data/file.txt': b'hello'}
"""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

NESTED = "!/"
"""Separates the levels of a member path: ``outer member!/inner member``."""

ZIP_SUFFIXES = (".zip", ".whl")
TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar")


class ArchiveReadError(Exception):
    """An archive is unreadable, of an unknown kind, or lacks a named member (message says which)."""


def kind_of(name: str) -> str:
    """``"zip"`` or ``"tar"`` from a file name; ArchiveReadError for any other suffix.

    >>> kind_of("x-1.0-py3-none-any.whl"), kind_of("x-1.0.tar.gz")
    ('zip', 'tar')
    """
    lowered = name.lower()
    if lowered.endswith(ZIP_SUFFIXES):
        return "zip"
    if lowered.endswith(TAR_SUFFIXES):
        return "tar"
    raise ArchiveReadError(f"{name} is neither a zip ({', '.join(ZIP_SUFFIXES)}) nor a tar "
                           f"({', '.join(TAR_SUFFIXES)}) archive")


def read_paths(source: Path | bytes, name: str, paths: Sequence[str]) -> dict[str, bytes]:
    """The bytes of each of ``paths`` (nested with ``!/``) inside the archive ``source`` named ``name``.

    ``source`` is the archive's file or its bytes. Raises ArchiveReadError naming the archive and the
    member when the archive is unreadable or a member is missing.
    """
    direct: dict[str, list[str]] = {}
    for path in paths:
        head, _, rest = path.partition(NESTED)
        direct.setdefault(head, []).append(rest)
    found = _read_direct(source, name, list(direct))
    result: dict[str, bytes] = {}
    for head, rests in direct.items():
        nested = [rest for rest in rests if rest]
        if nested:
            inner = read_paths(found[head], head, nested)
            result.update({f"{head}{NESTED}{rest}": inner[rest] for rest in nested})
        if "" in rests:
            result[head] = found[head]
    return {path: result[path] for path in paths}


def member_names(source: Path | bytes, name: str) -> set[str]:
    """The file names directly inside an archive (no nesting); empty when it is unreadable."""
    try:
        if kind_of(name) == "zip":
            with _open_zip(source) as opened:
                return set(opened.namelist())
        with _open_tar(source) as opened:
            return {member.name for member in opened.getmembers() if member.isfile()}
    except (ArchiveReadError, zipfile.BadZipFile, tarfile.TarError, EOFError, OSError):
        return set()


def _read_direct(source: Path | bytes, name: str, paths: list[str]) -> dict[str, bytes]:
    kind = kind_of(name)
    try:
        if kind == "zip":
            with _open_zip(source) as opened:
                return {path: opened.read(path) for path in paths}
        with _open_tar(source) as opened:
            found: dict[str, bytes] = {}
            for path in paths:
                extracted = opened.extractfile(path)  # KeyError when absent, None for a folder
                if extracted is None:
                    raise KeyError(f"{path} is not a regular file")
                found[path] = extracted.read()
            return found
    except KeyError as error:
        missing = error.args[0] if error.args else "a member"
        raise ArchiveReadError(f"{name} has no member {missing}") from error
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, ValueError) as error:
        raise ArchiveReadError(f"{name} is not a readable {kind} archive ({error})") from error


def _open_zip(source: Path | bytes) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source)


def _open_tar(source: Path | bytes) -> tarfile.TarFile:
    if isinstance(source, bytes):
        return tarfile.open(fileobj=io.BytesIO(source), mode="r:*")
    return tarfile.open(source, mode="r:*")
