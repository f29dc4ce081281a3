"""Tasks adapted per second: one task at a time (sequential) vs all tasks in one batch (batched).

Both paths go through the same learner. *Sequential* is a Python loop calling
``learner.adapt(batch.select([i]))`` for each task; *batched* is one ``learner.adapt(batch)``. Every
task has ``--examples`` random token sequences of ``--tokens`` tokens ([CLS] ... [SEP], full attention
masks, random binary labels), so no tokenizer or data set is needed. The encoder has MiniLM-L6's
exact architecture with random weights (speed does not depend on the weights).

For each task count (a *cell*) both paths run once to warm up, then ``--repeats`` times, interleaved
(sequential, batched, sequential, ...) so that load changes on a shared machine hit both alike; the
table gives the median rate, its range, and the peak memory of each path. ``--max-sequential-seconds``
stops each sequential repeat after that long and extrapolates its per-task rate (the table says so).

Needs only torch, transformers, peft, safetensors and numpy (it checks that nothing pulls in polars,
datasets or streamlit). Examples::

    python scripts/bench_engine.py                               # CPU or GPU, the defaults
    python scripts/bench_engine.py --device cuda --tasks 1,64,256,1024
    python scripts/bench_engine.py --layers top2 --learner maml   # adapters on the top 2 layers only
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import torch
import transformers

from personalize.encoder import Encoder, random_minilm_encoder, select_device, tiny_encoder
from personalize.engine.architectures import ADAPTER_TARGETS
from personalize.engine.batch import TaskBatch
from personalize.engine.config import AdapterConfig
from personalize.learners import LEARNERS, MetaLearner, create_learner

HEAVY_MODULES = ("polars", "datasets", "streamlit")
REPO = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------------------- arguments


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--tasks", default="1,8,64,256", help="comma-separated task counts (default 1,8,64,256)")
    parser.add_argument("--learner", default="fomaml", choices=sorted(LEARNERS), help="default fomaml")
    parser.add_argument("--steps", type=int, default=5, help="inner gradient steps (default 5)")
    parser.add_argument("--examples", type=int, default=20, help="support examples per task (default 20)")
    parser.add_argument("--tokens", type=int, default=16, help="tokens per example, [CLS] and [SEP] included")
    parser.add_argument("--rank", type=int, default=8, help="LoRA rank (default 8)")
    parser.add_argument("--targets", default="query,value",
                        help=f"adapted modules, comma-separated among {','.join(ADAPTER_TARGETS)} "
                             "(default query,value)")
    parser.add_argument("--layers", default="all",
                        help="adapted layers: 'all', 'topK' (the K highest) or indices like '4,5' (default all)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per cell; the median is reported")
    parser.add_argument("--max-sequential-seconds", type=float, default=30.0,
                        help="stop each sequential repeat after this many seconds (at least one task) and "
                             "extrapolate the per-task rate from the tasks done; 0 = no limit (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the encoder weights and the inputs")
    parser.add_argument("--encoder", default="minilm", choices=("minilm", "tiny"),
                        help="minilm: random MiniLM-L6 architecture (default); tiny: the unit-test encoder")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's choice, one per core)")
    parser.add_argument("--out", default=None,
                        help="markdown file to write (default docs/engine-benchmark-<device>.md)")
    args = parser.parse_args(argv)
    try:
        args.task_counts = [int(count) for count in args.tasks.split(",")]
    except ValueError:
        parser.error(f"--tasks must be comma-separated integers, got {args.tasks!r}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    for name in ("steps", "examples", "repeats", "rank"):
        if getattr(args, name) < (0 if name == "steps" else 1):
            parser.error(f"--{name} is too small: {getattr(args, name)}")
    if args.tokens < 2 or any(count < 1 for count in args.task_counts):
        parser.error("--tokens must be >= 2 and every task count >= 1")
    return args


def adapted_layers(spec: str, num_layers: int) -> tuple[int, ...] | None:
    """'all' -> None; 'top2' -> the two highest layers; '4,5' -> (4, 5)."""
    spec = spec.strip().lower()
    if spec == "all":
        return None
    if spec.startswith("top"):
        count = int(spec[3:])
        if not 1 <= count <= num_layers:
            raise SystemExit(f"--layers {spec}: the encoder has {num_layers} layers")
        return tuple(range(num_layers - count, num_layers))
    return tuple(int(index) for index in spec.split(","))


# ---------------------------------------------------------------------------------------- inputs


def random_batch(encoder: Encoder, tasks: int, examples: int, tokens: int, seed: int) -> TaskBatch:
    """``tasks`` x ``examples`` random token sequences [CLS] w1 ... [SEP], full masks, binary labels."""
    tokenizer = encoder.tokenizer
    vocab = int(encoder.model.config.vocab_size)
    lowest = max(tokenizer.all_special_ids) + 1  # ordinary tokens only between [CLS] and [SEP]
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(lowest, vocab, (tasks, examples, tokens), generator=generator)
    input_ids[..., 0] = tokenizer.cls_token_id
    input_ids[..., -1] = tokenizer.sep_token_id
    batch = TaskBatch(
        input_ids=input_ids,
        attention_mask=torch.ones_like(input_ids),
        targets=torch.randint(0, 2, (tasks, examples), generator=generator),
        example_mask=torch.ones(tasks, examples, dtype=torch.bool),
    )
    return batch.to(encoder.device)


# ---------------------------------------------------------------------------------------- measuring


class PeakMemory:
    """Peak memory of a stretch of code above what was in use when it started, in MiB."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.base = 0.0
        self._libc = None
        if device.type == "cuda":
            self.method = "torch.cuda.max_memory_allocated above the allocation at the start (reset per run)"
        elif Path("/proc/self/clear_refs").exists() and self._reset_peak_rss():
            with contextlib.suppress(OSError):
                self._libc = ctypes.CDLL("libc.so.6")
            self.method = ("peak RSS above the RSS at the start: VmHWM of /proc/self/status, reset per run by "
                           "writing 5 to /proc/self/clear_refs, after glibc malloc_trim")
        else:
            self.method = ("growth of resource.getrusage ru_maxrss (a process-lifetime high-water mark: "
                           "a lower bound, 0 when an earlier run already went as high)")

    @staticmethod
    def _reset_peak_rss() -> bool:
        try:
            Path("/proc/self/clear_refs").write_text("5")
            return True
        except OSError:
            return False

    @staticmethod
    def _status_mib(key: str) -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) / 1024
        raise KeyError(key)

    @staticmethod
    def _maxrss_mib() -> float:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device) / 2**20
        elif self.method.startswith("peak RSS"):
            if self._libc is not None:
                self._libc.malloc_trim(0)
            self._reset_peak_rss()
            self.base = self._status_mib("VmRSS:")
        else:
            self.base = self._maxrss_mib()

    def stop(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return torch.cuda.max_memory_allocated(self.device) / 2**20 - self.base
        if self.method.startswith("peak RSS"):
            return self._status_mib("VmHWM:") - self.base
        return self._maxrss_mib() - self.base


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Run:
    tasks_done: int
    seconds: float
    peak_mib: float

    @property
    def rate(self) -> float:
        return self.tasks_done / self.seconds


def run_batched(learner: MetaLearner, batch: TaskBatch, memory: PeakMemory) -> Run:
    device = learner.encoder.device
    memory.start()
    start = time.perf_counter()
    learner.adapt(batch)
    synchronize(device)
    seconds = time.perf_counter() - start
    return Run(batch.num_tasks, seconds, memory.stop())


def run_sequential(learner: MetaLearner, batch: TaskBatch, memory: PeakMemory, limit: float | None) -> Run:
    """Adapt the tasks one at a time, stopping early (after at least one task) once ``limit`` seconds passed."""
    device = learner.encoder.device
    memory.start()
    start = time.perf_counter()
    done = 0
    for index in range(batch.num_tasks):
        learner.adapt(batch.select([index]))
        done += 1
        if limit is not None:
            synchronize(device)
            if time.perf_counter() - start > limit:
                break
    synchronize(device)
    seconds = time.perf_counter() - start
    return Run(done, seconds, memory.stop())


@dataclass
class Cell:
    tasks: int
    sequential: list[Run]
    batched: list[Run]


def measure_cell(learner: MetaLearner, batch: TaskBatch, repeats: int, limit: float | None,
                 memory: PeakMemory, log: Callable[[str], None]) -> Cell:
    tasks = batch.num_tasks
    log(f"{tasks} tasks: warm-up")
    learner.adapt(batch.select([0]))
    learner.adapt(batch)
    sequential, batched = [], []
    for repeat in range(repeats):
        sequential.append(run_sequential(learner, batch, memory, limit))
        batched.append(run_batched(learner, batch, memory))
        log(f"{tasks} tasks, repeat {repeat + 1}/{repeats}: sequential {sequential[-1].rate:.2f} tasks/s "
            f"({sequential[-1].tasks_done} tasks in {sequential[-1].seconds:.1f} s), batched "
            f"{batched[-1].rate:.2f} tasks/s ({batched[-1].seconds:.1f} s)")
    return Cell(tasks, sequential, batched)


# ---------------------------------------------------------------------------------------- reporting


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        output = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        name = next((line.split(":", 1)[1].strip() for line in output.splitlines()
                     if line.startswith("Model name")), "")
    name = name or platform.processor() or platform.machine()
    return f"{name}, {torch.get_num_threads()} torch threads"


def load_average() -> str:
    try:
        return "/".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def rate_text(runs: list[Run]) -> str:
    rates = [run.rate for run in runs]
    median = statistics.median(rates)
    if len(rates) == 1:
        return f"{median:.2f}"
    return f"{median:.2f} ({min(rates):.2f}-{max(rates):.2f})"


def table(cells: list[Cell]) -> str:
    lines = [
        "| tasks | sequential tasks/s | batched tasks/s | batched / sequential | sequential peak MiB "
        "| batched peak MiB | sequential measured on |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    for cell in cells:
        ratio = statistics.median(r.rate for r in cell.batched) / statistics.median(r.rate for r in cell.sequential)
        fewest, most = (f(run.tasks_done for run in cell.sequential) for f in (min, max))
        done = f"{fewest}" if fewest == most else f"{fewest}-{most}"
        coverage = (f"all {cell.tasks} tasks" if fewest == cell.tasks
                    else f"first {done} of {cell.tasks} tasks per repeat (rate extrapolated)")
        lines.append(
            f"| {cell.tasks} | {rate_text(cell.sequential)} | {rate_text(cell.batched)} | {ratio:.2f}x "
            f"| {max(r.peak_mib for r in cell.sequential):.0f} | {max(r.peak_mib for r in cell.batched):.0f} "
            f"| {coverage} |"
        )
    return "\n".join(lines)


def report(args: argparse.Namespace, argv: list[str], learner: MetaLearner, device: torch.device,
           memory: PeakMemory, cells: list[Cell], heavy: list[str], loads: tuple[str, str]) -> str:
    encoder = learner.encoder
    adapter = learner.config.adapter
    layers = adapter.adapted_layers(encoder.num_layers)
    adapter_params = sum(value.numel() for name, value in learner.init.items() if not name.startswith("head_"))
    steps = f"{args.steps} inner steps" if hasattr(learner.config, "inner_steps") else "no inner steps (closed form)"
    command = "python scripts/bench_engine.py" + "".join(f" {shlex.quote(arg)}" for arg in argv)
    lines = [
        f"# Engine benchmark: sequential vs batched adaptation ({device.type})",
        "",
        f"- command: `{command}`",
        f"- device: {device_name(device)}",
        f"- software: torch {torch.__version__}, transformers {transformers.__version__}, "
        f"python {platform.python_version()}",
        f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}; seed {args.seed}",
        f"- encoder: {encoder.name} ({encoder.num_layers} layers, hidden {encoder.hidden_size}), frozen"
        + (", bf16 autocast" if device.type == "cuda" else ", float32"),
        f"- learner: {learner.name}, {steps}; LoRA r={adapter.rank} on {','.join(adapter.target_modules)} of "
        f"layers {','.join(map(str, layers))} ({adapter_params:,} adapter parameters per task)",
        f"- inputs: {args.examples} examples x {args.tokens} tokens per task, random token ids, full attention "
        "masks, random binary labels",
        f"- timing: median (min-max) of {args.repeats} repeats after one warm-up of each path per cell; "
        "sequential and batched repeats interleaved"
        + (f"; each sequential repeat stops after {args.max_sequential_seconds:g} s"
           if args.max_sequential_seconds else ""),
        f"- memory: {memory.method}; the largest over the repeats",
        f"- machine load (1/5/15-min load average) before: {loads[0]}, after: {loads[1]} "
        "(other processes competing for the cores make every figure slower and noisier)",
    ]
    if heavy:
        lines.append(f"- WARNING: importing the engine pulled in {', '.join(heavy)}: it will not run on the GPU box")
    return "\n".join(lines) + "\n\n" + table(cells) + "\n"


# ---------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> str:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    device = select_device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    load_before = load_average()
    torch.manual_seed(args.seed)
    if args.encoder == "tiny":
        encoder = tiny_encoder(seed=args.seed, device=str(device))
    else:
        encoder = random_minilm_encoder(seed=args.seed, device=str(device))
    adapter = AdapterConfig(rank=args.rank, target_modules=tuple(args.targets.split(",")),
                            layers=adapted_layers(args.layers, encoder.num_layers))
    fields_of_learner = {f.name for f in fields(LEARNERS[args.learner].config_class)}
    extra = {"inner_steps": args.steps} if "inner_steps" in fields_of_learner else {}
    learner = create_learner(args.learner, encoder, adapter=adapter, seed=args.seed, **extra)
    memory = PeakMemory(device)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log(f"device {device_name(device)}; learner {learner.name}; memory: {memory.method}")
    cells = []
    for index, tasks in enumerate(args.task_counts):
        batch = random_batch(encoder, tasks, args.examples, args.tokens, seed=args.seed + index)
        limit = args.max_sequential_seconds or None
        cells.append(measure_cell(learner, batch, args.repeats, limit, memory, log))
        del batch
    heavy = [name for name in HEAVY_MODULES if name in sys.modules]
    loads = (load_before, load_average())
    text = report(args, argv, learner, device, memory, cells, heavy, loads)
    out = Path(args.out) if args.out else REPO / "docs" / f"engine-benchmark-{device.type}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    print(f"written to {out}", file=sys.stderr)
    return text


if __name__ == "__main__":
    main()
