"""A state bank: every adapted user's (or task's) own state, in sharded safetensors files with a parquet index.

A batch job adapts users chunk by chunk; each chunk becomes one *part* of the bank::

    bank.json                          format, kind, the model the states belong to, id type
    shards/part-000001.safetensors     the states of the part's users, stacked
    index/part-000001.parquet          one row per user: id, part, group, row, checksum, input hash, ...
    top/part-000001.parquet            (optional) the users' top-N items, written by the job

A part is *committed* when its index file exists. The shard (and top file) are written first, each
under a hidden temporary name and renamed into place, and the index file last, so a crash at any
moment leaves committed parts plus, at worst, a shard or top file that no index points to:
:meth:`StateBank.open_for_writing` deletes those. Nothing an index points to is ever half-written.

States are stored per *group* (users whose state tensors have the same names and shapes): a group's
fixed-size tensors are stacked ``[rows, ...]`` under ``g{k}/{name}``, and its ragged ones (a
different length per user, such as the items a user rated) as ``g{k}/{name}@values`` plus
``g{k}/{name}@offsets``. Reading one user opens one shard and reads only that user's rows. Each
index row carries a checksum of the user's bytes, checked on every read and by :meth:`verify`.
A user adapted again later (an incremental run) gets a row in a newer part; the newest row wins.

>>> import tempfile, torch
>>> bank = StateBank.open_for_writing(tempfile.mkdtemp() + "/bank", kind="demo", model_id="m1",
...                                   model_source="demo", id_dtype="Int64")
>>> group = StateGroup(fixed={"mean": torch.tensor([[1.0, 2.0], [3.0, 4.0]])},
...                    ragged={"seen": [torch.tensor([7]), torch.tensor([8, 9])]})
>>> bank.write_part([10, 11], [group], input_hashes=[1, 2], counts=[1, 2])
1
>>> fixed, ragged, meta = StateBank(bank.path).read(11)
>>> fixed["mean"].tolist(), ragged["seen"].tolist(), meta
([3.0, 4.0], [8, 9], None)
>>> StateBank(bank.path).verify().ok
True
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from personalize.errors import BankError, require
from personalize.files import staged_file

if TYPE_CHECKING:
    import polars as pl

FORMAT = "personalize-bank"
FORMAT_VERSION = 1
CONFIG_FILE = "bank.json"
FOLDERS = ("shards", "index", "top")
SUFFIX = {"shards": ".safetensors", "index": ".parquet", "top": ".parquet"}
PART_NAME = re.compile(r"^part-(\d{6})\.(safetensors|parquet)$")
ID_DTYPES = ("Int64", "String")
OPEN_SHARDS = 32
"""Shards a reader keeps open (memory-mapped) between reads."""


@dataclass
class StateGroup:
    """The states of some users that share one layout: fixed tensors [rows, ...] and ragged ones (a list per row)."""

    fixed: dict[str, torch.Tensor] = field(default_factory=dict)
    ragged: dict[str, list[torch.Tensor]] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        sizes = {len(value) for value in [*self.fixed.values(), *self.ragged.values()]}
        require(len(sizes) == 1, f"a state group's tensors disagree on the number of rows: {sorted(sizes)}", BankError)
        return sizes.pop()


@dataclass
class VerifyReport:
    """What :meth:`StateBank.verify` found: counts, and every problem as one line."""

    parts: int = 0
    rows: int = 0
    users: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def part_file(root: Path, folder: str, part: int) -> Path:
    return root / folder / f"part-{part:06d}{SUFFIX[folder]}"


def row_checksum(pieces: Sequence[np.ndarray]) -> str:
    """A 128-bit blake2b of one user's bytes (their slice of every tensor, in name order)."""
    digest = hashlib.blake2b(digest_size=16)
    for piece in pieces:
        digest.update(np.ascontiguousarray(piece).tobytes())
    return digest.hexdigest()


class StateBank:
    """A bank folder, open for reading (``StateBank(path)``) or writing (:meth:`open_for_writing`)."""

    def __init__(self, path: str | Path, model: Any = None) -> None:
        self.path = Path(path)
        config = self.path / CONFIG_FILE
        require(config.is_file(), f"{self.path} is not a state bank: {CONFIG_FILE} is missing", BankError)
        try:
            document = json.loads(config.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise BankError(f"{config} is not valid JSON: {error}") from error
        require(isinstance(document, dict) and document.get("format") == FORMAT
                and document.get("format_version") == FORMAT_VERSION,
                f"{config} is not a {FORMAT} v{FORMAT_VERSION} file", BankError)
        self.document: dict[str, Any] = document
        self._index: pl.DataFrame | None = None
        self._lookup: tuple[np.ndarray, np.ndarray] | None = None
        self._codec: Any = None
        self._shards: dict[int, Any] = {}
        self._latest: pl.DataFrame | None = None
        self._given_model = model

    @property
    def kind(self) -> str:
        return self.document["kind"]

    @property
    def model_id(self) -> str:
        return self.document["model"]["id"]

    @property
    def model_source(self) -> str:
        return self.document["model"]["source"]

    def __repr__(self) -> str:
        return f"StateBank({str(self.path)!r}, kind={self.kind!r}, parts={len(self.parts())})"

    # --- creating and writing ------------------------------------------------------------------------

    @classmethod
    def open_for_writing(cls, path: str | Path, *, kind: str, model_id: str, model_source: str,
                         id_dtype: str, extra: dict[str, Any] | None = None) -> StateBank:
        """Create a bank at ``path``, or reopen one written for the same model, ready for more parts.

        Refuses a folder that holds something else, and a bank of another kind or model. Files of a
        part that never committed (a crash before its index was written) are deleted.
        """
        require(id_dtype in ID_DTYPES, f"id_dtype must be one of {ID_DTYPES}, got {id_dtype!r}", BankError)
        root = Path(path)
        require(not root.is_file(), f"{root} is a file, not a bank folder: choose another output path", BankError)
        if (root / CONFIG_FILE).is_file():
            bank = cls(root)
            require(bank.kind == kind, f"{root} is a bank of {bank.kind} states, not {kind}: use another output folder",
                    BankError)
            require(bank.model_id == model_id,
                    f"{root} was written by another model ({bank.model_source}, id {bank.model_id[:12]}), not this "
                    f"one ({model_source}, id {model_id[:12]}): use another output folder, or the same model",
                    BankError)
            require(bank.document["id_dtype"] == id_dtype,
                    f"{root} holds {bank.document['id_dtype']} ids, but this log's ids are {id_dtype}", BankError)
            bank._remove_uncommitted()
            bank.drop_superseded_top()
            return bank
        require(not root.exists() or not any(root.iterdir()),
                f"{root} already holds files and is not a state bank: choose an empty or new folder", BankError)
        try:
            for folder in FOLDERS:
                (root / folder).mkdir(parents=True, exist_ok=True)
            document = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind,
                        "model": {"id": model_id, "source": model_source}, "id_dtype": id_dtype,
                        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **(extra or {})}
            with staged_file(root / CONFIG_FILE) as staging:
                staging.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        except OSError as error:
            raise BankError(f"cannot write the bank at {root}: {error.strerror or error}; "
                            "choose a writable folder with free space") from error
        return cls(root)

    def _remove_uncommitted(self) -> None:
        committed = set(self.parts())
        for folder in ("shards", "top"):
            for file in (self.path / folder).glob("part-*"):
                match = PART_NAME.match(file.name)
                if match and int(match.group(1)) not in committed:
                    file.unlink()
        for folder in FOLDERS:
            for leftover in (self.path / folder).glob(".partial-*"):
                leftover.unlink()

    def drop_superseded_top(self) -> int:
        """Remove, from older top-N files, the rows of users adapted again in a newer part; returns how many
        rows went. Run after each job (and when a bank is reopened, in case a job stopped before it)."""
        import polars as pl

        everything, latest = self.index(latest=False), self.index()
        if everything.height == latest.height or not self.document.get("top"):
            return 0
        stale = everything.join(latest.select("id", "part"), on=["id", "part"], how="anti")
        removed = 0
        for (part,), users in stale.group_by("part"):
            path = part_file(self.path, "top", part)
            if not path.is_file():
                continue
            top = pl.read_parquet(path)
            kept = top.filter(~pl.col("user_id").is_in(users["id"].implode()))
            if kept.height < top.height:
                with staged_file(path) as staging:
                    kept.write_parquet(staging)
                removed += top.height - kept.height
        return removed

    def write_part(self, ids: Sequence[Hashable], groups: Sequence[StateGroup], *, input_hashes: Sequence[int],
                   counts: Sequence[int], meta: Sequence[str | None] | None = None,
                   top: pl.DataFrame | None = None) -> int:
        """Commit one part: the states of ``ids`` (the rows of ``groups``, in order), their input hashes
        (what the job compares on a rerun) and counts (ratings or examples), optional per-user JSON
        ``meta`` and a top-N frame. Returns the part number."""
        import polars as pl

        require(len(set(ids)) == len(ids), "a part cannot hold the same id twice", BankError)
        require(sum(group.rows for group in groups) == len(ids) == len(input_hashes) == len(counts),
                "write_part: ids, group rows, input_hashes and counts must have one entry per user", BankError)
        part = max([0, *self._all_part_numbers()]) + 1
        tensors: dict[str, torch.Tensor] = {}
        group_of, row_of, checksums = [], [], []
        for number, group in enumerate(groups):
            pieces_per_row: list[list[np.ndarray]] = [[] for _ in range(group.rows)]
            for name in sorted(group.fixed):
                value = group.fixed[name].detach().cpu().contiguous()
                tensors[f"g{number}/{name}"] = value
                array = value.numpy()
                for row in range(group.rows):
                    pieces_per_row[row].append(array[row])
            for name in sorted(group.ragged):
                rows = [value.detach().cpu().reshape(-1) for value in group.ragged[name]]
                values = torch.cat(rows) if rows else torch.zeros(0)
                offsets = torch.tensor(np.concatenate([[0], np.cumsum([len(r) for r in rows])]), dtype=torch.int64)
                tensors[f"g{number}/{name}@values"] = values.contiguous()
                tensors[f"g{number}/{name}@offsets"] = offsets
                array = values.numpy()
                for row in range(group.rows):
                    pieces_per_row[row].append(array[offsets[row]:offsets[row + 1]])
            group_of += [number] * group.rows
            row_of += list(range(group.rows))
            checksums += [row_checksum(pieces) for pieces in pieces_per_row]
        dtype = pl.Int64 if self.document["id_dtype"] == "Int64" else pl.String
        index = pl.DataFrame({
            "id": pl.Series(list(ids), dtype=dtype),
            "part": pl.Series([part] * len(ids), dtype=pl.Int32),
            "group": pl.Series(group_of, dtype=pl.Int16),
            "row": pl.Series(row_of, dtype=pl.Int32),
            "checksum": pl.Series(checksums, dtype=pl.String),
            "input_hash": pl.Series([int(h) for h in input_hashes], dtype=pl.UInt64),
            "count": pl.Series([int(c) for c in counts], dtype=pl.Int32),
            "meta": pl.Series(list(meta) if meta is not None else [None] * len(ids), dtype=pl.String),
            "adapted_at": pl.Series([time.time()] * len(ids), dtype=pl.Float64),
        })
        try:
            with staged_file(part_file(self.path, "shards", part)) as staging:
                save_file(tensors, str(staging))
            if top is not None:
                with staged_file(part_file(self.path, "top", part)) as staging:
                    top.write_parquet(staging)
            with staged_file(part_file(self.path, "index", part)) as staging:  # the commit
                index.write_parquet(staging)
        except OSError as error:
            for folder in ("shards", "top"):
                part_file(self.path, folder, part).unlink(missing_ok=True)
            raise BankError(f"writing part {part} of the bank at {self.path} failed ({error.strerror or error}); "
                            f"the bank keeps its {len(self.parts())} committed part(s): free space or fix the folder, "
                            "then run the same command again to continue") from error
        self._index = self._latest = None
        self._lookup = None
        return part

    # --- reading -------------------------------------------------------------------------------------

    def _all_part_numbers(self) -> list[int]:
        numbers = []
        for folder in FOLDERS:
            for file in (self.path / folder).glob("part-*"):
                match = PART_NAME.match(file.name)
                if match:
                    numbers.append(int(match.group(1)))
        return numbers

    def parts(self) -> list[int]:
        """The committed part numbers, in order."""
        return sorted({int(m.group(1)) for f in (self.path / "index").glob("part-*.parquet")
                       if (m := PART_NAME.match(f.name))})

    def index(self, *, latest: bool = True) -> pl.DataFrame:
        """Every committed index row (``latest=False``) or, by default, the newest row of each id."""
        import polars as pl

        if self._index is None:
            parts = self.parts()
            if parts:
                frames = [pl.read_parquet(part_file(self.path, "index", part)) for part in parts]
                self._index = pl.concat(frames)
            else:
                dtype = pl.Int64 if self.document["id_dtype"] == "Int64" else pl.String
                self._index = pl.DataFrame(schema={"id": dtype, "part": pl.Int32, "group": pl.Int16,
                                                   "row": pl.Int32, "checksum": pl.String, "input_hash": pl.UInt64,
                                                   "count": pl.Int32, "meta": pl.String, "adapted_at": pl.Float64})
        if not latest:
            return self._index
        if self._latest is None:
            self._latest = self._index.unique("id", keep="last", maintain_order=True)
        return self._latest

    def __len__(self) -> int:
        return self.index().height

    def __contains__(self, user: Hashable) -> bool:
        return self._position(user) is not None

    def _position(self, user: Hashable) -> int | None:
        if self._lookup is None:
            index = self.index()
            ids = index["id"].to_numpy()
            order = np.argsort(ids, kind="stable")
            self._lookup = (ids[order], order)
        ids, order = self._lookup
        try:
            at = int(np.searchsorted(ids, user))
        except TypeError:
            return None
        if at < len(ids) and ids[at] == user:
            return int(order[at])
        return None

    def entry(self, user: Hashable) -> dict[str, Any]:
        """The newest index row of ``user`` as a dict; BankError if the bank does not hold it."""
        position = self._position(user)
        require(position is not None, f"the bank at {self.path} holds no user {user!r}", BankError)
        return self.index().row(position, named=True)

    def read(self, user: Hashable) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], Any]:
        """One user's state: fixed tensors (without the row dimension), ragged tensors, and meta
        (parsed JSON or None). Checks the user's checksum."""
        entry = self.entry(user)
        shard = part_file(self.path, "shards", entry["part"])
        prefix, row = f"g{entry['group']}/", entry["row"]
        fixed: dict[str, torch.Tensor] = {}
        ragged: dict[str, torch.Tensor] = {}
        try:
            file = self._open_shard(entry["part"])
            names = sorted(key[len(prefix):] for key in file.keys() if key.startswith(prefix))
            for name in names:
                if name.endswith("@offsets"):
                    continue
                if name.endswith("@values"):
                    base = name[: -len("@values")]
                    bounds = file.get_slice(f"{prefix}{base}@offsets")[row:row + 2].tolist()
                    ragged[base] = file.get_slice(f"{prefix}{name}")[bounds[0]:bounds[1]]
                else:
                    fixed[name] = file.get_slice(f"{prefix}{name}")[row:row + 1][0]
        except (OSError, SafetensorError) as error:
            raise BankError(f"cannot read {shard} for user {user!r}: {error}; run `personalize bank verify` "
                            f"on {self.path}") from error
        pieces = [fixed[name].numpy() for name in sorted(fixed)] + [ragged[name].numpy() for name in sorted(ragged)]
        require(row_checksum(pieces) == entry["checksum"],
                f"user {user!r} in {shard} does not match its checksum: the shard was changed or damaged; "
                "re-run the batch job for this user", BankError)
        return fixed, ragged, json.loads(entry["meta"]) if entry["meta"] is not None else None

    def _open_shard(self, part: int) -> Any:
        """An open shard (memory-mapped, header parsed once); the last few stay open for the next reads."""
        if part in self._shards:
            self._shards[part] = self._shards.pop(part)  # most recently used last
            return self._shards[part]
        handle = safe_open(str(part_file(self.path, "shards", part)), framework="pt")
        self._shards[part] = handle
        while len(self._shards) > OPEN_SHARDS:
            self._shards.pop(next(iter(self._shards)))
        return handle

    # --- working models -------------------------------------------------------------------------------

    def codec(self) -> Any:
        """The codec over the bank's model: the one given to the constructor, else its recorded source
        loaded with ``personalize.load``; refused unless it is the model the states were adapted with."""
        if self._codec is None:
            from personalize.bank.codecs import codec_for

            model = self._given_model
            if model is None:
                from personalize.loading import load

                model = load(self.model_source)
            codec = codec_for(model)
            require(codec.kind == self.kind, f"the bank at {self.path} holds {self.kind} states, not "
                                             f"{codec.kind} ones", BankError)
            require(codec.model_id() == self.model_id,
                    f"the bank at {self.path} was written by another model ({self.model_source}, id "
                    f"{self.model_id[:12]}) than the one given (id {codec.model_id()[:12]})", BankError)
            self._codec = codec
        return self._codec

    def get(self, user: Hashable) -> Any:
        """User ``user`` as a working model: a UserModel that predicts and recommends, or a TaskModel."""
        fixed, ragged, meta = self.read(user)
        return self.codec().decode(fixed, ragged, meta, user)

    def export(self, user: Hashable, folder: str | Path) -> Path:
        """Write ``user``'s adapted model as a standard PEFT folder (adapter-based models only)."""
        model = self.get(user)
        require(hasattr(model, "to_peft"), f"{self.kind} states hold no adapter weights to export as PEFT; "
                                           "use get() for a working model", BankError)
        return model.to_peft(folder)

    # --- checking --------------------------------------------------------------------------------------

    def verify(self) -> VerifyReport:
        """Re-read every committed part and check every user's checksum; list orphans and duplicates."""
        report = VerifyReport()
        parts = self.parts()
        report.parts = len(parts)
        for folder in ("shards", "top"):
            for file in sorted((self.path / folder).glob("part-*")):
                match = PART_NAME.match(file.name)
                if match and int(match.group(1)) not in parts:
                    report.problems.append(f"{folder}/{file.name} belongs to no committed part (an interrupted write)")
        for part in parts:
            report.rows += self._verify_part(part, report.problems)
        everything = self.index(latest=False)
        duplicated = everything.group_by("part", "id").len()
        duplicated = duplicated.filter(duplicated["len"] > 1)
        if duplicated.height:
            report.problems.append(f"{duplicated.height} id(s) appear twice within one part, e.g. "
                                   f"{duplicated['id'].head(3).to_list()}")
        report.users = self.index().height
        return report

    def _verify_part(self, part: int, problems: list[str]) -> int:
        import polars as pl

        index = pl.read_parquet(part_file(self.path, "index", part))
        shard = part_file(self.path, "shards", part)
        if not shard.is_file():
            problems.append(f"part {part}: its shard {shard.name} is missing")
            return index.height
        try:
            tensors = load_file(str(shard))
        except (OSError, SafetensorError) as error:
            problems.append(f"part {part}: {shard.name} cannot be read ({error})")
            return index.height
        if self.document.get("top") and not part_file(self.path, "top", part).is_file():
            problems.append(f"part {part}: its top-N file is missing")
        # Offsets are not covered by the users' checksums: a damaged one that slicing clamps (the last
        # offset made larger, the first of an empty row) would leave every user's bytes intact.
        for name in sorted(tensors):
            if name.endswith("@offsets"):
                offsets, values = tensors[name].numpy(), tensors.get(f"{name[:-len('@offsets')]}@values")
                if not (values is not None and offsets.ndim == 1 and offsets.size >= 1 and offsets[0] == 0
                        and bool(np.all(np.diff(offsets) >= 0)) and offsets[-1] == values.shape[0]):
                    problems.append(f"part {part}: {shard.name}: {name} is damaged (offsets must rise from 0 "
                                    "to the number of values)")
        bad = []
        for user, group, row, checksum in index.select("id", "group", "row", "checksum").iter_rows():
            prefix = f"g{group}/"
            names = sorted(name[len(prefix):] for name in tensors if name.startswith(prefix))
            fixed = [name for name in names if "@" not in name]
            ragged = [name for name in names if name.endswith("@values")]
            pieces = [tensors[prefix + name][row].numpy() for name in fixed]  # the order write_part hashed them in
            for name in ragged:
                offsets = tensors[f"{prefix}{name[:-len('@values')]}@offsets"]
                pieces.append(tensors[prefix + name][int(offsets[row]):int(offsets[row + 1])].numpy())
            if not names or row_checksum(pieces) != checksum:
                bad.append(user)
        if bad:
            problems.append(f"part {part}: {len(bad)} user(s) do not match their checksum, e.g. {bad[:3]}")
        return index.height


__all__ = ["StateBank", "StateGroup", "VerifyReport"]
