"""Where a batch job's *adapt* step runs: in this process (``local``) or on a pool of Ray actors (``ray``).

:func:`~personalize.jobs.runner.run_job` streams a log's chunks, prepares them (checks, input
hashes: cheap and vectorised) and drops the users the bank already holds, always in the driver. An
*engine* turns that stream of :class:`Work` into adapted chunks, **in submission order**, and the
driver commits each one to the bank as it comes back. So the bank is written by one process (its
part numbers are max + 1, its commits atomic renames) and is the same, byte for byte, whichever
engine adapted it.

- :class:`LocalEngine` adapts each chunk in this process, one at a time, as it arrives.
- :class:`RayEngine` starts ``workers`` Ray actors, each holding the job's adapter with its own copy
  of the model (loaded once: from the shipped name or folder the job was given, else from the
  driver's model object put once in Ray's object store), sends each chunk to the least busy actor,
  keeps at most :data:`IN_FLIGHT_PER_WORKER` chunks per actor in flight (so the driver's memory
  stays flat however long the log) and hands results back in order. Each actor checks that its
  model has the driver's model id before the first chunk.

Ray is imported only when a Ray engine starts: this module, and the jobs, import without it.

>>> make_engine("local").name
'local'
>>> make_engine("spark")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
personalize.errors.ConfigError: engine must be one of 'local', 'ray' (--engine), got 'spark'
>>> make_engine("local", address="auto")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
personalize.errors.ConfigError: address='auto' (--address) is only for engine='ray': add --engine ray, or drop ...
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from personalize.errors import ConfigError, EngineError, PersonalizeError, require

if TYPE_CHECKING:
    from personalize.jobs.runner import Adapted, ChunkAdapter, Prepared

ENGINES = ("local", "ray")
IN_FLIGHT_PER_WORKER = 2
"""Chunks an actor holds at once (one running, one queued), so it never waits for the driver."""
READY_TIMEOUT_S = 600.0
"""How long the actors may take to start and load the model before the job gives up."""
REACHABLE = ("every node needs personalize installed and the model reachable: a shipped name, or a folder on "
             "shared storage at the same path")


@dataclass
class Work:
    """One prepared chunk and which of its users to adapt (``keep``; none: nothing to adapt, pass it on)."""

    prepared: Prepared
    keep: np.ndarray


@dataclass(frozen=True)
class Recipe:
    """How a worker rebuilds the job's adapter: ``build(model)``, with the model loaded from ``source``
    (a shipped name or a folder) when there is one, else shipped as the driver's ``model`` object.
    ``model_id`` is the bank's model id: every worker's model must have it."""

    build: Callable[[Any], ChunkAdapter]
    model: Any
    model_id: str
    source: str | None = None


@dataclass
class EngineStats:
    """What an engine reports about a run: where it adapted, how many workers, start-up time, worker memory."""

    name: str = "local"
    workers: int = 1
    startup_seconds: float = 0.0
    worker_peak_rss_mb: float | None = None


class Engine(Protocol):
    """Adapts a stream of prepared chunks, yielding each with its result in the order given."""

    name: str
    stats: EngineStats

    def adapt(self, adapter: ChunkAdapter, work: Iterator[Work],
              recipe: Recipe | None = None) -> Iterator[tuple[Work, Adapted | None]]: ...


class LocalEngine:
    """Adapt each chunk in this process as it arrives (what ``--engine local`` runs)."""

    name = "local"

    def __init__(self) -> None:
        self.stats = EngineStats()

    def adapt(self, adapter: ChunkAdapter, work: Iterator[Work],
              recipe: Recipe | None = None) -> Iterator[tuple[Work, Adapted | None]]:
        for item in work:
            yield item, adapter.adapt(item.prepared, item.keep) if item.keep.any() else None


class AdaptWorker:
    """A Ray actor's body: the job's adapter over its own copy of the model, built once."""

    def __init__(self, build: Callable[[Any], ChunkAdapter], source: str | None, model: Any, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        if source is not None:
            from personalize.loading import load

            model = load(source)
        self.adapter = build(model)

    def model_id(self) -> str:
        return self.adapter.codec.model_id()

    def adapt(self, prepared: Prepared, keep: np.ndarray) -> Adapted:
        return self.adapter.adapt(prepared, keep)

    def peak_rss_mb(self) -> float:
        from personalize.jobs.runner import peak_rss_mb

        return peak_rss_mb()


class RayEngine:
    """Adapt chunks on ``workers`` Ray actors (what ``--engine ray`` runs); see the module docstring.

    ``address`` None starts a local Ray instance (of ``workers`` CPUs when given) unless this process
    is already connected to Ray or ``RAY_ADDRESS`` names a cluster; ``"auto"`` joins the cluster
    started on this machine by ``ray start``; ``"ray://host:10001"`` is a remote cluster (Ray Client).
    ``workers`` None: one per CPU of the cluster. Each actor takes one CPU and runs one torch thread.
    """

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        from personalize.extras import require_module

        require(workers is None or (isinstance(workers, int) and workers >= 1),
                f"workers (--workers) must be an int >= 1, got {workers!r}")
        require(address is None or (isinstance(address, str) and address.strip() != ""),
                f"address (--address) must be 'auto', 'ray://host:port' or 'host:port', got {address!r}")
        require_module("ray", extra="ray", feature="--engine ray")
        self.address = address
        self.workers = workers
        self.stats = EngineStats(name="ray", workers=0)

    def adapt(self, adapter: ChunkAdapter, work: Iterator[Work],
              recipe: Recipe | None = None) -> Iterator[tuple[Work, Adapted | None]]:
        import ray

        require(recipe is not None, "the ray engine needs a Recipe: how its workers rebuild the job's adapter")
        for first in work:  # chunks the bank already holds pass through: a rerun with nothing to do starts no Ray
            if first.keep.any():
                break
            yield first, None
        else:
            return
        started = time.perf_counter()
        _check_reachable(self.address)  # Ray itself retries an unreachable address for minutes
        owns_ray = not ray.is_initialized()
        if owns_ray:
            self._connect(ray)
        actors: list[Any] = []
        try:
            actors = self._start_actors(ray, recipe)
            self.stats.workers = len(actors)
            self.stats.startup_seconds = time.perf_counter() - started
            yield from self._ordered(ray, actors, chain([first], work))
            self.stats.worker_peak_rss_mb = max(ray.get([actor.peak_rss_mb.remote() for actor in actors]))
        finally:
            for actor in actors:
                ray.kill(actor)
            if owns_ray:
                ray.shutdown()

    def _connect(self, ray: Any) -> None:
        joins = self.address is not None or bool(os.environ.get("RAY_ADDRESS"))
        where = self.address or os.environ.get("RAY_ADDRESS") or "a new local instance"
        try:
            ray.init(address=self.address, num_cpus=None if joins else self.workers, include_dashboard=False,
                     logging_level=logging.WARNING)
        except Exception as error:  # ConnectionError, RuntimeError, grpc errors: Ray raises many kinds
            raise EngineError(f"cannot start or reach Ray at {where}: {_first_line(error)}; check --address "
                              "('auto' needs `ray start --head` on this machine, a remote cluster "
                              "'ray://host:10001')") from error

    def _start_actors(self, ray: Any, recipe: Recipe) -> list[Any]:
        cpus = int(ray.cluster_resources().get("CPU", 0))
        workers = self.workers or max(1, cpus)
        require(workers <= cpus, f"workers={workers} (--workers) but the Ray cluster has {cpus} CPU(s) and each "
                                 f"worker takes one: ask for at most {cpus}", ConfigError)
        model = None if recipe.source is not None else ray.put(recipe.model)
        remote = ray.remote(num_cpus=1, max_restarts=0)(AdaptWorker)
        actors = [remote.remote(recipe.build, recipe.source, model, 1) for _ in range(workers)]
        try:
            self._check_actors(ray, actors, recipe)
        except BaseException:
            for actor in actors:
                ray.kill(actor)
            raise
        return actors

    def _check_actors(self, ray: Any, actors: list[Any], recipe: Recipe) -> None:
        """Wait for every actor to load its model and refuse one whose model id is not the driver's."""
        where = recipe.source or "the object store (the driver's in-memory model)"
        try:
            ids = ray.get([actor.model_id.remote() for actor in actors], timeout=READY_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError as error:
            raise EngineError(f"the {len(actors)} Ray worker(s) did not start within {READY_TIMEOUT_S:.0f} s: the "
                              "cluster may lack free CPUs; ask for fewer --workers") from error
        except ray.exceptions.RayError as error:
            raise EngineError(f"a Ray worker could not load the model from {where}: {_cause(error)}; "
                              + REACHABLE) from error
        wrong = [i for i, model_id in enumerate(ids) if model_id != recipe.model_id]
        require(not wrong, f"Ray worker(s) {wrong} loaded another model from {where} than the driver's (id "
                           f"{recipe.model_id[:12]}); {REACHABLE}, the same files on every node", EngineError)

    def _ordered(self, ray: Any, actors: list[Any], work: Iterator[Work]) -> Iterator[tuple[Work, Adapted | None]]:
        """Submit each chunk to the least busy actor and yield results in submission order, with at most
        IN_FLIGHT_PER_WORKER chunks per actor waiting (chunks with nothing to adapt count too: they hold
        their prepared rows until the chunks before them are committed)."""
        pending: deque[tuple[Work, Any, int | None]] = deque()
        busy = [0] * len(actors)
        limit = IN_FLIGHT_PER_WORKER * len(actors)

        def first() -> tuple[Work, Adapted | None]:
            item, ref, actor = pending.popleft()
            if ref is None:
                return item, None
            busy[actor] -= 1
            try:
                return item, ray.get(ref)
            except ray.exceptions.RayTaskError as error:
                if isinstance(error.cause, PersonalizeError):
                    raise error.cause from None
                raise EngineError(f"a Ray worker failed adapting a chunk: {_cause(error)}; the bank keeps its "
                                  "committed parts: run the same command again to continue") from error
            except ray.exceptions.RayError as error:
                raise EngineError(f"a Ray worker was lost ({_cause(error)}); the bank keeps its committed parts: "
                                  "run the same command again to continue") from error

        while True:
            try:
                item = next(work)
            except StopIteration:
                break
            except Exception:  # the log was refused mid-way: commit what is in flight first, as local does
                while pending:
                    yield first()
                raise
            if item.keep.any():
                actor = min(range(len(actors)), key=busy.__getitem__)
                busy[actor] += 1
                pending.append((item, actors[actor].adapt.remote(item.prepared, item.keep), actor))
            else:
                pending.append((item, None, None))
            while pending and (pending[0][1] is None or len(pending) >= limit):
                yield first()
        while pending:
            yield first()


def make_engine(engine: str = "local", *, address: str | None = None, workers: int | None = None) -> Engine:
    """The engine named ``engine`` (``"local"`` or ``"ray"``); ``address`` and ``workers`` are Ray's."""
    require(engine in ENGINES, f"engine must be one of {', '.join(map(repr, ENGINES))} (--engine), got {engine!r}")
    if engine == "local":
        require(address is None, f"address={address!r} (--address) is only for engine='ray': add --engine ray, or "
                                 "drop --address")
        require(workers is None, f"workers={workers!r} (--workers) is only for engine='ray': add --engine ray, or "
                                 "drop --workers")
        return LocalEngine()
    return RayEngine(address=address, workers=workers)


def _check_reachable(address: str | None, timeout: float = 10.0) -> None:
    """Refuse a ``host:port`` or ``ray://host:port`` address nothing answers on (``auto`` and None pass)."""
    import socket

    if address is None or address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # not host:port: let Ray judge it
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as error:
        raise EngineError(f"nothing answers at the Ray address {address!r} ({error.strerror or error}); check "
                          "--address: 'auto' for the cluster `ray start --head` runs here, 'ray://HOST:10001' for a "
                          "remote one") from error


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _cause(error: Any) -> str:
    cause = getattr(error, "cause", None)
    return _first_line(cause) if isinstance(cause, BaseException) else _first_line(error)


__all__ = ["ENGINES", "AdaptWorker", "Engine", "EngineStats", "LocalEngine", "RayEngine", "Recipe", "Work",
           "make_engine"]
