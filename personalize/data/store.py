"""The fetched tables on disk: one folder per data set, parquet files plus ``manifest.json``.

The manifest records the format version, the source archive and member sha256s the tables were
built from, and for each table its row count and the sha256 of its file ``<table>.parquet``. A
folder is trusted only when its manifest is readable, of this format version, built from a source
still pinned, and every table file still has its recorded sha256.

Writes are atomic: the tables and then the manifest are written into a ``.partial-*`` folder next
to the final one, which is renamed into place only when complete. A crash midway leaves at most
that partial folder, which nothing reads.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from personalize.data.sources import Archive, DatasetSpec
from personalize.errors import ChecksumError, DataNotFetchedError
from personalize.files import sha256_file, staged_folder
from personalize.paths import dataset_dir

if TYPE_CHECKING:
    import polars as pl

FORMAT_VERSION = 1
"""Bump when the normalised tables change, so that tables fetched before are rebuilt."""

MANIFEST_NAME = "manifest.json"

Manifest = dict[str, Any]


def write_tables(
    spec: DatasetSpec,
    tables: Mapping[str, pl.DataFrame],
    *,
    archive: Archive,
    archive_sha256: str,
    log: Callable[[str], None],
) -> Manifest:
    """Write ``tables`` as parquet plus a manifest, atomically replacing any earlier folder."""
    with staged_folder(dataset_dir(spec.name), overwrite=True, complete_marker=MANIFEST_NAME) as staging:
        table_entries = {}
        for table, frame in tables.items():
            file = table_file(staging, table)
            frame.write_parquet(file)
            table_entries[table] = {"rows": frame.height, "sha256": sha256_file(file)}
            log(f"{spec.name}: wrote table {table} ({frame.height:,} rows)")
        manifest = {
            "format_version": FORMAT_VERSION,
            "dataset": spec.name,
            "source": {
                "file": archive.filename,
                "sha256": archive_sha256,
                "members": {member.path: member.sha256 for member in archive.members},
            },
            "tables": table_entries,
        }
        (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def verified_manifest(spec: DatasetSpec) -> Manifest:
    """The manifest of ``spec``'s fetched tables, after checking that every table is intact.

    Raises DataNotFetchedError when the data set was never fetched (or was fetched by another
    format version or from a source no longer pinned), and ChecksumError when a table file is
    missing or was changed since it was written. Either message names the fix.
    """
    folder = dataset_dir(spec.name)
    manifest_path = folder / MANIFEST_NAME
    refetch = (
        f"Fix: run `personalize data fetch {spec.name}` "
        f"(it rebuilds the tables from the verified download)."
    )
    if not manifest_path.is_file():
        raise DataNotFetchedError(
            f"Data set {spec.name!r} is not fetched yet (no {manifest_path}).\n"
            f"Fix: run `personalize data fetch {spec.name}`, or call "
            f"personalize.data.fetch([{spec.name!r}])."
        )
    try:
        manifest = json.loads(manifest_path.read_text())
        recorded_tables = manifest["tables"]
        recorded_source = manifest["source"]["members"]
        version = manifest["format_version"]
    except (ValueError, KeyError, TypeError) as error:  # not JSON, or not a manifest
        raise ChecksumError(f"{manifest_path} is unreadable ({error!r}).\n{refetch}") from error
    if version != FORMAT_VERSION:
        raise DataNotFetchedError(
            f"{folder} holds tables of format version {version}; this version of personalize reads "
            f"version {FORMAT_VERSION}.\n{refetch}"
        )
    pinned_sources = [
        {member.path: member.sha256 for member in source.archive.members} for source in spec.sources
    ]
    if recorded_source not in pinned_sources:
        raise DataNotFetchedError(
            f"{folder} was built from a source that is no longer pinned.\n{refetch}"
        )
    if set(recorded_tables) != set(spec.tables):
        raise ChecksumError(
            f"{manifest_path} lists tables {sorted(recorded_tables)}, "
            f"expected {sorted(spec.tables)}.\n{refetch}"
        )
    for table, entry in recorded_tables.items():
        table_path = table_file(folder, table)
        if not table_path.is_file():
            raise ChecksumError(
                f"Table {table!r} of {spec.name} is missing: {table_path}.\n{refetch}"
            )
        actual = sha256_file(table_path)
        if actual != entry["sha256"]:
            raise ChecksumError(
                f"{table_path} was changed after it was written.\n"
                f"  expected sha256: {entry['sha256']}\n  actual sha256:   {actual}\n{refetch}"
            )
    return manifest


def table_file(folder: Path, table: str) -> Path:
    """The parquet file of ``table`` in a data set's folder."""
    return folder / f"{table}.parquet"


def remove_tables(spec: DatasetSpec) -> None:
    """Delete the fetched folder of ``spec`` if there is one."""
    shutil.rmtree(dataset_dir(spec.name), ignore_errors=True)

