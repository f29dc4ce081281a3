"""The ``personalize`` command line.

    personalize data fetch [NAME ...] [--from PATH] [--force]   fetch and verify the real data sets
    personalize data list                                         what is fetched, with row counts
    personalize suites list                                       the task suites and their sizes
    personalize suites sample NAME --split test --shots 8         print a seeded episode
    personalize encoder info [--model PATH]                       load the encoder and describe it
    personalize encoder fetch mpnet-base [--force]                fetch and verify an opt-in encoder
    personalize meta-fit [SUITE] --out DIR [--learner NAME[,NAME]]  meta-train and save a classifier
    personalize demo [--precision int8]                           the main job on shipped defaults
    personalize adapt-users LOG --out BANK [--top N]              adapt every user of a log into a bank
    personalize bank verify|get|export BANK ...                   check and read a state bank
    personalize data synth --users N --out DIR                    a synthetic log for scale tests
    personalize app [--port 8501]                                 open the Streamlit demo (the app extra)

Every subcommand has ``--help`` and ``-v/--verbose`` (the library's INFO logs on stderr; ``-vv`` DEBUG).

Errors the library raises on purpose are printed as one line
(with the fix) and exit with status 1; anything else is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from personalize.errors import PersonalizeError


def print_table(rows: Sequence[dict[str, Any]]) -> None:
    """Print rows of equal keys as a markdown table (via polars' formatter)."""
    import polars as pl

    with pl.Config(tbl_formatting="ASCII_MARKDOWN", tbl_hide_column_data_types=True,
                   tbl_hide_dataframe_shape=True, tbl_rows=-1, tbl_cols=-1, fmt_str_lengths=80,
                   tbl_width_chars=250):
        print(pl.DataFrame(rows))


# --- data -----------------------------------------------------------------------------------------


def cmd_data_fetch(args: argparse.Namespace) -> None:
    from personalize import data

    reports = data.fetch(args.names or None, source=args.source, force=args.force, log=print)
    print_table([{"data set": r.name, "status": r.status, "rows": ", ".join(f"{t} {n:,}" for t, n in r.rows.items()),
                  "path": str(r.path)} for r in reports])


def cmd_data_list(args: argparse.Namespace) -> None:
    from personalize import data
    from personalize.paths import data_dir

    rows = []
    for name in data.names():
        fetched = data.is_fetched(name)
        tables = data.load(name).tables if fetched else {}
        rows.append({"data set": name, "fetched": "yes" if fetched else "no",
                     "rows": ", ".join(f"{table} {frame.height:,}" for table, frame in tables.items())})
    print(f"data directory: {data_dir()}")
    print_table(rows)


def cmd_data_path(args: argparse.Namespace) -> None:
    from personalize.paths import data_dir

    print(data_dir())


# --- suites ---------------------------------------------------------------------------------------


def cmd_suites_list(args: argparse.Namespace) -> None:
    from personalize.tasks import available_suites, load_suite

    print_table([load_suite(name).summary() for name in available_suites()])


def cmd_suites_sample(args: argparse.Namespace) -> None:
    from personalize.tasks import Episode, load_suite

    suite = load_suite(args.suite)
    shots = args.shots if args.shots is not None else suite.spec.shots[0]
    for episode in suite.episodes(args.split, shots=shots, n=args.n, seed=args.seed):
        if isinstance(episode, Episode):
            print(f"task {episode.task!r}: {episode.ways}-way {shots}-shot, {len(episode.query_rows)} queries")
            for text, label in zip(episode.support_texts, episode.support_labels):
                print(f"  [{episode.classes[label]}] {text[:100]}")
        else:
            print(f"user {episode.user!r}: {len(episode.support_rows)} support, {len(episode.query_rows)} query")
            print(f"  support items {episode.support_items.tolist()} ratings {episode.support_ratings.tolist()}")


# --- encoder --------------------------------------------------------------------------------------


def cmd_encoder_info(args: argparse.Namespace) -> None:
    from personalize.encoder import load_encoder

    encoder = load_encoder(args.model, device=args.device, allow_download=args.allow_download)
    identity = encoder.identity()
    parameters = sum(p.numel() for p in encoder.model.parameters())
    print_table([{**identity, "device": str(encoder.device), "parameters": f"{parameters:,}"}])


def cmd_encoder_fetch(args: argparse.Namespace) -> None:
    from personalize.encoder_packages import fetch_encoder

    print(fetch_encoder(args.name, force=args.force, log=print))


# --- meta-training -------------------------------------------------------------------------------


def cmd_meta_fit(args: argparse.Namespace) -> None:
    """Meta-train on a suite (one learner, or select among several) and save what it gives: a
    classifier for a classification suite whose episodes hold every class, else the learner."""
    from personalize import classifier_training as training
    from personalize.checkpoint import KIND as LEARNER_KIND
    from personalize.checkpoint import save_learner
    from personalize.errors import require
    from personalize.files import check_save_target
    from personalize.provenance import portable_args
    from personalize.sentiment import KIND as CLASSIFIER_KIND
    from personalize.tasks import load_suite

    command = " ".join(portable_args(["personalize", *args.argv]))  # scripts/meta_train.py runs it too
    if args.retune_prior:
        check_save_target(args.out, CLASSIFIER_KIND, overwrite=True)
        encoder = None
        if args.model:
            from personalize.encoder import load_encoder

            encoder = load_encoder(args.model, device=args.device, max_length=args.max_length)
        classifier = training.retune_prior(args.out, encoder=encoder, seed=args.seed,
                                           episodes=args.prior_episodes, device=args.device, command=command)
        classifier.save(args.out, overwrite=True)  # the classifier it loaded, with its new prior strength
        print(f"saved {args.out} with prior strength {classifier.prior_strength:g}")
        return
    config = training.TrainingConfig(
        suite=args.suite, learners=tuple(args.learner.split(",")), select=args.select, steps=args.steps,
        budget_s=args.budget, meta_batch_size=args.meta_batch_size, query_per_class=args.query_per_class,
        outer_lr=args.outer_lr, inner_steps=args.inner_steps, inner_lr=args.inner_lr, rank=args.rank,
        layers=args.layers, max_length=args.max_length, val_every=args.val_every, val_episodes=args.val_episodes,
        reference_per_class=args.reference_per_class, prior_episodes=args.prior_episodes,
        checkpoint_dir=args.checkpoint_dir, checkpoint_every=args.checkpoint_every, encoder=args.model,
        device=args.device, seed=args.seed)
    suite = load_suite(config.suite)
    as_classifier = training.trains_classifier(suite)
    require(as_classifier or args.multiclass is None,
            f"--multiclass attaches a companion to a classifier; suite {suite.name!r} trains a learner checkpoint")
    check_save_target(args.out, CLASSIFIER_KIND if as_classifier else LEARNER_KIND, overwrite=args.overwrite)
    if as_classifier:
        classifier = training.train_classifier(config, suite=suite, multiclass=args.multiclass, command=command)
        classifier.save(args.out, overwrite=args.overwrite)
        learner, record = classifier.learner, classifier.record
    else:
        from personalize.encoder import load_encoder
        from personalize.provenance import machine

        encoder = load_encoder(config.encoder, device=config.device, max_length=config.max_length)
        learner = training.meta_train(config, suite, encoder)
        record = {**learner.record, "command": command, "suite": suite.name, "seed": config.seed,
                  "device": str(encoder.device), "machine": machine()}
        save_learner(learner, args.out, record, overwrite=args.overwrite)
    print(f"saved {learner.name} to {args.out}: best meta-validation loss {record['best_val_loss']:.4f} "
          f"at step {record['best_step']}")


def layer_list(value: str) -> tuple[int, ...]:
    """``--layers 2,3,4``: comma-separated encoder layer indices >= 0 (argparse type)."""
    try:
        layers = tuple(int(part) for part in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer indices such as 2,3,4,5, got {value!r}") \
            from None
    if not layers or min(layers) < 0:
        raise argparse.ArgumentTypeError(f"layer indices must be >= 0, got {value!r}")
    return layers


# --- demo -----------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> None:
    """Fetch every data set (a no-op when cached), print the suites, then adapt the shipped models."""
    from personalize import data
    from personalize.encoder import PRECISIONS
    from personalize.errors import require

    require(args.precision is None or args.precision in PRECISIONS,  # before the fetch, not after it
            f"--precision must be one of {', '.join(PRECISIONS)}, got {args.precision!r}")

    data.fetch(log=print)
    cmd_suites_list(args)
    print()
    sentiment_demo(shots=args.shots, episodes=args.episodes, precision=args.precision)
    print()
    recommend_demo()


def recommend_demo() -> None:
    """Adapt the shipped MovieLens recommender to the shipped split's unseen test users; print MAE by
    support size, then recommendations for a new user who rated three films."""
    import time
    import warnings

    import numpy as np
    import polars as pl

    from personalize.loading import load
    from personalize.tasks import load_suite

    recommender = load("movielens")
    suite = load_suite("movielens-users")
    print(f"Shipped recommender: {recommender}; {len(suite.splits()['test'])} test users never seen in training, "
          "10 held-out ratings each")
    rows = []
    for shots in (0, 1, 5, None):
        episodes = suite.episodes("test", shots=max(1, shots) if shots is not None else None)
        errors, started = [], time.perf_counter()
        for episode in episodes:
            history = pl.DataFrame({"item_id": episode.support_items[: shots if shots is not None else None],
                                    "rating": episode.support_ratings[: shots if shots is not None else None]})
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # K = 0: the prior, as the warning says
                user = recommender.adapt(history)
            errors.append(np.abs(user.predict(list(episode.query_items)) - episode.query_ratings))
        rows.append({"support ratings": "all but the query" if shots is None else str(shots),
                     "users": len(episodes), "MAE": f"{np.concatenate(errors).mean():.3f}",
                     "adapt + predict per user": f"{(time.perf_counter() - started) / len(episodes) * 1000:.1f} ms"})
    print_table(rows)
    titles = dict(zip(recommender.catalogue.ids, recommender.catalogue.titles or recommender.catalogue.texts))
    wanted = {"Star Wars": 5.0, "Toy Story": 5.0, "Titanic": 1.0}
    history = pl.DataFrame({"item_id": [next(i for i, t in titles.items() if t == title) for title in wanted],
                            "rating": list(wanted.values())})
    print("\nA new user rated " + ", ".join(f"{title} {rating:g}/5" for title, rating in wanted.items())
          + "; the top 5:")
    top = recommender.adapt(history).recommend(n=5)
    print_table([{"rank": row["rank"], "title": row["title"], "predicted rating": f"{row['rating']:.2f}",
                  "std": f"{row['std']:.2f}"} for row in top.iter_rows(named=True)])
    print("Ask them next about: " + ", ".join(recommender.suggest_to_rate(history, n=5)["title"].to_list()))


def sentiment_demo(shots: int = 8, episodes: int = 5, precision: str | None = None) -> None:
    """Adapt the shipped sentiment init to unseen domains from K examples per class; print accuracies.

    ``precision`` is the encoder's inference precision (see ``pz.load``); None keeps its default.
    """
    import statistics
    import time

    import numpy as np

    from personalize.loading import load
    from personalize.tasks import load_suite

    classifier = load("sentiment", precision=precision)
    zero_shot = classifier.zero_shot()
    companion = f" (prototypes past two classes: {classifier.multiclass.learner.name})" if classifier.multiclass else ""
    print(f"Shipped sentiment model: {classifier.learner.name}{companion} on {classifier.encoder.name} "
          f"({classifier.encoder.precision} precision); "
          f"{episodes} seeded {shots}-shot episodes per unseen domain, 64 held-out queries each")
    rows = []
    for suite_name, task in (("movies-sentiment", "movies"), ("clothing-sentiment", "Jackets"),
                             ("clothing-sentiment", "Skirts")):
        before, after, seconds = [], [], []
        for episode in load_suite(suite_name).episodes("test", shots=shots, n=episodes, seed=0, task=task):
            names = [classifier.labels[int(label)] for label in episode.support_labels]  # so the prior applies
            started = time.perf_counter()
            model = classifier.adapt(episode.support_texts, names)
            seconds.append(time.perf_counter() - started)
            for scores, predictor in ((after, model), (before, zero_shot)):
                guessed = [classifier.labels.index(label) for label in predictor.predict(episode.query_texts)]
                scores.append(np.mean(np.asarray(guessed) == episode.query_labels))
        rows.append({"domain": task, "zero-shot accuracy": f"{np.mean(before):.3f}",
                     f"adapted ({shots}-shot) accuracy": f"{np.mean(after):.3f}",
                     "median adapt time": f"{statistics.median(seconds) * 1000:.0f} ms"})
    print_table(rows)


# --- app ------------------------------------------------------------------------------------------


def cmd_app(args: argparse.Namespace) -> None:
    """Serve the packaged Streamlit demo (refused in one line when streamlit is not installed)."""
    from personalize.app import home_path, run_app

    if args.print_path:
        print(home_path())
        return
    status = run_app(port=args.port, address=args.address, headless=args.headless)
    if status:
        raise SystemExit(status)


# --- parser ---------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from personalize.classifier_training import TrainingConfig

    parser = argparse.ArgumentParser(prog="personalize", description="Meta-learned personalization.")
    groups = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")

    data_parser = groups.add_parser("data", help="fetch and inspect the real data sets")
    data_commands = data_parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    fetch = data_commands.add_parser("fetch", help="download, verify and normalise data sets (a no-op when cached)")
    fetch.add_argument("names", nargs="*", metavar="NAME",
                       help="movielens-100k, clothing-reviews, rotten-tomatoes, vader-snippets, "
                            "pattern-polarity (default: all)")
    fetch.add_argument("--from", dest="source", metavar="PATH",
                       help="a local source file instead of downloading: the pinned wheel, or GroupLens ml-100k.zip")
    fetch.add_argument("--force", action="store_true", help="discard cached downloads and tables and redo them")
    fetch.set_defaults(handler=cmd_data_fetch)
    data_commands.add_parser("list", help="which data sets are fetched, with row counts").set_defaults(
        handler=cmd_data_list)
    data_commands.add_parser("path", help="print the data directory ($PERSONALIZE_DATA)").set_defaults(
        handler=cmd_data_path)

    suites_parser = groups.add_parser("suites", help="list task suites and sample episodes")
    suite_commands = suites_parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    suite_commands.add_parser("list", help="table of shipped suites with tasks and examples per split").set_defaults(
        handler=cmd_suites_list)
    sample = suite_commands.add_parser("sample", help="print seeded episodes of a suite")
    sample.add_argument("suite", help="suite name or path to a suite .toml file")
    sample.add_argument("--split", default="test", choices=["train", "val", "test"], help="which split (default test)")
    sample.add_argument("--shots", type=int, help="support examples per class (per user for interactions)")
    sample.add_argument("--n", type=int, default=1, help="how many episodes (default 1)")
    sample.add_argument("--seed", type=int, default=0, help="episode seed (default 0)")
    sample.set_defaults(handler=cmd_suites_sample)

    encoder_parser = groups.add_parser("encoder", help="inspect the pretrained encoder")
    encoder_commands = encoder_parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    info = encoder_commands.add_parser("info", help="load the encoder, verify its weights and describe it")
    info.add_argument("--model", help="mpnet-base (once fetched), a local folder or hub id "
                                      "(default: the bundled all-MiniLM-L6-v2)")
    info.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda, cuda:N or mps")
    info.add_argument("--allow-download", action="store_true", help="allow fetching a hub id from the network")
    info.set_defaults(handler=cmd_encoder_info)
    encoder_fetch = encoder_commands.add_parser(
        "fetch", help="download (pip, never installed), verify and unpack an opt-in encoder, e.g. mpnet-base")
    encoder_fetch.add_argument("name", help="mpnet-base (all-mpnet-base-v2, about 400 MB)")
    encoder_fetch.add_argument("--force", action="store_true", help="discard cached wheels and folder and redo them")
    encoder_fetch.set_defaults(handler=cmd_encoder_fetch)

    fit = groups.add_parser("meta-fit", help="meta-train on a task suite and save the classifier (or learner) it gives",
                            description="Meta-train on a suite's meta-train tasks (meta-validation chooses the step, "
                            "the learner and the prior strength; meta-test is never read) and save a classifier "
                            "(classification suites) or a learner checkpoint. The defaults are the shipped "
                            "sentiment model's (personalize.classifier_training.TrainingConfig).")
    defaults = TrainingConfig()
    fit.add_argument("suite", nargs="?", default=defaults.suite,
                     help=f"suite name or path to a suite .toml file (default {defaults.suite})")
    fit.add_argument("--out", required=True, help="folder to write the classifier or checkpoint to")
    fit.add_argument("--learner", default=",".join(defaults.learners),
                     help="maml, fomaml, meta-sgd, reptile, protonet, bayes or pooled; several, comma-separated, are "
                          f"selected among on meta-validation (default {','.join(defaults.learners)})")
    fit.add_argument("--select", action="store_true", help="select even with one --learner (its inner-loop grid)")
    for flag, field, kind, text in (
            ("--steps", "steps", int, "outer steps"),
            ("--budget", "budget_s", float, "seconds of training at most, shared by candidates"),
            ("--meta-batch-size", "meta_batch_size", int, "tasks per outer step"),
            ("--query-per-class", "query_per_class", int, "training queries per class"),
            ("--outer-lr", "outer_lr", float, "peak AdamW learning rate"),
            ("--rank", "rank", int, "LoRA rank"),
            ("--max-length", "max_length", int, "tokens per text"),
            ("--val-every", "val_every", int, "validate every N steps"),
            ("--val-episodes", "val_episodes", int, "meta-validation episodes"),
            ("--reference-per-class", "reference_per_class", int,
             "meta-train examples per class behind the zero-shot classifier"),
            ("--prior-episodes", "prior_episodes", int,
             "meta-validation episodes per K that choose a prototype classifier's prior strength")):
        fit.add_argument(flag, type=kind, default=getattr(defaults, field), help=f"{text} (default %(default)s)")
    fit.add_argument("--inner-steps", type=int, help="gradient steps of adaptation (one optimization learner)")
    fit.add_argument("--inner-lr", type=float, help="their step size (one optimization learner; Meta-SGD: the start)")
    fit.add_argument("--layers", type=layer_list, help="comma-separated encoder layers with adapters (default: "
                                                       "the top two thirds; MiniLM-L6: 2,3,4,5)")
    fit.add_argument("--checkpoint-dir", help="save last/ and best/ here as training goes; resume from it")
    fit.add_argument("--checkpoint-every", type=int, metavar="N",
                     help="write --checkpoint-dir's last/ every N steps and at the end (default: each validation)")
    fit.add_argument("--multiclass", metavar="DIR",
                     help="a saved prototype classifier to take the tasks with more classes than the trained "
                          "learner's head (copied into --out)")
    fit.add_argument("--retune-prior", action="store_true",
                     help="do not train: re-choose the prior strength of the classifier in --out")
    fit.add_argument("--overwrite", action="store_true",
                     help="replace a classifier or checkpoint already at --out (never a folder holding other files)")
    fit.add_argument("--model", help="encoder folder or name (default: the bundled all-MiniLM-L6-v2)")
    fit.add_argument("--device", default=defaults.device, help="auto (cuda > mps > cpu), cpu, cuda, cuda:N or mps")
    fit.add_argument("--seed", type=int, default=defaults.seed,
                     help=f"seed of initialization and episodes (default {defaults.seed})")
    fit.set_defaults(handler=cmd_meta_fit)

    demo = groups.add_parser("demo", help="the main job: fetch the data, show the suites, adapt the shipped models")
    demo.add_argument("--shots", type=int, default=8, help="support examples per class (default 8)")
    demo.add_argument("--episodes", type=int, default=5, help="episodes per domain (default 5)")
    demo.add_argument("--precision", help="sentiment encoder inference precision: auto (default; bfloat16 where "
                      "the CPU has it), float32, bfloat16 or int8")
    demo.set_defaults(handler=cmd_demo)

    app = groups.add_parser("app", help="open the Streamlit demo app on the shipped models (pip install "
                            "personalize[app])")
    app.add_argument("--port", type=int, help="port to serve on (default: streamlit's, 8501)")
    app.add_argument("--address", help="address to bind (default: streamlit's)")
    app.add_argument("--headless", action="store_true", help="do not open a browser")
    app.add_argument("--print-path", action="store_true", help="print the path of the app's Home.py and exit")
    app.set_defaults(handler=cmd_app)

    from personalize.cli_jobs import register as register_batch_commands

    register_batch_commands(groups, data_commands)
    add_verbose_option(parser)
    return parser


def add_verbose_option(parser: argparse.ArgumentParser, top: bool = True) -> None:
    """``-v/--verbose`` on ``parser`` and every subcommand under it, so it may come before or after them."""
    parser.add_argument("-v", "--verbose", action="count", default=0 if top else argparse.SUPPRESS,
                        help="show the library's log messages (-v INFO, -vv DEBUG) on stderr")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                add_verbose_option(child, top=False)


def main(argv: Sequence[str] | None = None) -> int:
    from personalize.logs import show_logs

    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # recorded by the commands that save a model
    try:
        with show_logs(verbosity=args.verbose):
            args.handler(args)
    except PersonalizeError as error:
        print(f"personalize: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
