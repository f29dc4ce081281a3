"""How long one few-shot adaptation takes, method against method, timed side by side in one run.

The sentiment benchmark times each method in its own pass, so its times come from different
minutes of a shared machine. Here every method adapts to the same episodes in turn (episode 1 with
each method, then episode 2, ...), so machine noise hits all of them alike, and the ratios between
their medians are what to read. Methods:

- the shipped classifier (``--classifier``) with the encoder in float32, with bfloat16 inference
  (what ``precision="auto"`` picks on CPUs with native bfloat16), and with int8 weights
  (``precision="int8"``, opt-in);
- SetFit with its default training arguments on the same MiniLM (``--setfit-episodes`` per
  domain; 0 skips it).

Writes a markdown table to ``--out`` (default docs/sentiment-speed.md)::

    python scripts/time_adaptation.py --episodes 20 --setfit-episodes 3
"""

from __future__ import annotations

import argparse
import datetime
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import personalize as pz
from personalize.encoder import cpu_has_native_bf16
from personalize.provenance import machine, portable_args
from personalize.sentiment_benchmark import DOMAINS, adapted, setfit_method
from personalize.tasks import load_suite


def time_methods(methods: dict, episodes_by_domain: dict, setfit_episodes: int) -> dict[str, dict[str, list[float]]]:
    """Seconds of each adaptation, {domain: {method: [seconds, ...]}}, methods interleaved per episode."""
    seconds: dict[str, dict[str, list[float]]] = {}
    for domain, episodes in episodes_by_domain.items():
        for index, episode in enumerate(episodes):
            labels = [int(label) for label in episode.support_labels]
            for name, fit in methods.items():
                if name == "SetFit" and index >= setfit_episodes:
                    continue
                started = time.perf_counter()
                fit(episode.support_texts, labels)
                seconds.setdefault(domain, {}).setdefault(name, []).append(time.perf_counter() - started)
        summary = ", ".join(f"{name} {statistics.median(values) * 1000:.0f} ms"
                            for name, values in seconds[domain].items())
        print(f"{domain}: {summary}", flush=True)
    return seconds


def report(seconds: dict[str, dict[str, list[float]]], baseline: str, header: list[str]) -> str:
    names = list(next(iter(seconds.values())))
    lines = [*header, "", "| domain | " + " | ".join(f"{name}, median" for name in names)
             + " | " + " | ".join(f"{name} / {baseline}" for name in names if name != baseline) + " |",
             "|---|" + "---:|" * (2 * len(names) - 1)]
    for domain, by_method in seconds.items():
        medians = {name: statistics.median(values) for name, values in by_method.items()}
        cells = [f"{medians[name] * 1000:.0f} ms ({len(by_method[name])})" if name in medians else "—"
                 for name in names]
        ratios = [f"{medians[name] / medians[baseline]:.2f}x" if name in medians else "—"
                  for name in names if name != baseline]
        lines.append(f"| {domain} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classifier", default="sentiment", help="shipped name or folder (default: sentiment)")
    parser.add_argument("--shots", type=int, default=8, help="K, support examples per class (default 8)")
    parser.add_argument("--episodes", type=int, default=20, help="episodes per domain (default 20)")
    parser.add_argument("--setfit-episodes", type=int, default=3, help="SetFit episodes per domain (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="episode seed (default 0, as the benchmark)")
    parser.add_argument("--out", default="docs/sentiment-speed.md", help="markdown report (default docs/...)")
    args = parser.parse_args(argv)
    if args.episodes < 1 or args.setfit_episodes < 0:
        sys.exit("--episodes must be >= 1 and --setfit-episodes >= 0")

    exact, fast, int8 = (pz.load(args.classifier, precision=precision) for precision in ("float32", "bfloat16", "int8"))
    if fast.encoder.device.type == "cpu" and not cpu_has_native_bf16():
        print("note: this CPU has no native bfloat16; the bfloat16 column is emulated (precision='auto' "
              "would stay float32 here)")
    name = f"meta {exact.learner.name}"
    methods = {f"{name}, float32": adapted(exact), f"{name}, bfloat16": adapted(fast), f"{name}, int8": adapted(int8)}
    if args.setfit_episodes:
        from personalize.encoder_sources import bundled_model_dir

        methods["SetFit"] = setfit_method(str(bundled_model_dir()), Path(tempfile.mkdtemp(prefix="setfit-")))
    episodes = {task: load_suite(suite).episodes("test", shots=args.shots, n=args.episodes, seed=args.seed, task=task)
                for suite, task in DOMAINS}
    first = next(iter(episodes.values()))[0]
    for fit in list(methods.values())[:3]:  # warm up: first calls pay for lazy initialisation
        fit(first.support_texts, [int(label) for label in first.support_labels])
    started = time.perf_counter()
    seconds = time_methods(methods, episodes, args.setfit_episodes)
    header = [
        "# Adaptation time, side by side",
        "",
        "Generated by `scripts/time_adaptation.py` (do not edit by hand):",
        "",
        f"    python scripts/time_adaptation.py {shlex.join(portable_args(sys.argv[1:]))}    # "
        f"{time.perf_counter() - started:.0f} s, {machine()}, {fast.encoder.device}, {datetime.date.today()}",
        "",
        f"One {args.shots}-shot, 2-way adaptation per episode (seed {args.seed}, the benchmark's first "
        "episodes); the methods take turns on each episode. Cells: median wall time (episodes timed); "
        f"ratios: median over the `{name}, bfloat16` median.",
    ]
    text = report(seconds, f"{name}, bfloat16", header)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
