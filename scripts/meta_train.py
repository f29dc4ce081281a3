"""Meta-train the shipped sentiment initialization on the clothing-sentiment suite.

Meta-training sees the suite's meta-train product classes only; its meta-validation classes choose
the best step (and, with several ``--learner`` values, the learner); the meta-test classes and
Rotten Tomatoes are never read. The result is a sentiment classifier folder (see
:mod:`personalize.sentiment`) whose ``classifier.json`` records the command, seed, wall time,
device and the whole training history next to the weights.

Examples::

    # the shipped checkpoint (about 45 minutes on 2 CPU cores)
    python scripts/meta_train.py --out personalize/pretrained/sentiment
    # a quick try
    python scripts/meta_train.py --out /tmp/sentiment --steps 20 --val-episodes 8
    # Meta-SGD adapting in one step of learned per-entry step sizes
    python scripts/meta_train.py --out /tmp/sentiment --learner meta-sgd --inner-steps 1 --budget 1080
    # the shipped layout: that, with a prototype classifier trained before taking tasks of 3+ classes
    python scripts/meta_train.py --out /tmp/protonet
    python scripts/meta_train.py --out /tmp/sentiment --learner meta-sgd --inner-steps 1 --budget 1080 \
        --multiclass /tmp/protonet
    # model selection between families within one budget
    python scripts/meta_train.py --out /tmp/sentiment --learner protonet,fomaml --budget 3600

With ``--checkpoint-dir`` an interrupted run resumes where it stopped. For prototype learners the
run ends by choosing, on meta-validation episodes, how much the zero-shot prototypes count against
a new domain's support (``SentimentClassifier.prior_strength``); ``--retune-prior`` redoes only that
on an existing classifier folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from personalize.checkpoint import read_learner_document
from personalize.encoder import load_encoder
from personalize.engine.config import AdapterConfig, HeadConfig
from personalize.errors import PersonalizeError
from personalize.learners import create_learner, learner_class
from personalize.meta_fit import MetaFitConfig, meta_fit
from personalize.provenance import machine, portable_args
from personalize.selection import SelectionConfig, select_learner
from personalize.sentiment import SentimentClassifier, read_classifier_document, reference_examples, tune_prior_strength
from personalize.tasks import load_suite


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder to write the sentiment classifier to")
    parser.add_argument("--suite", default="clothing-sentiment", help="task suite (default clothing-sentiment)")
    parser.add_argument("--learner", default="protonet",
                        help="learner, or comma-separated learners to select among (default protonet)")
    parser.add_argument("--steps", type=int, default=600, help="outer steps (default 600)")
    parser.add_argument("--inner-steps", type=int,
                        help="gradient steps of adaptation (optimization learners; default: the learner's, 5)")
    parser.add_argument("--inner-lr", type=float,
                        help="their step size (optimization learners; Meta-SGD: the starting one; default 0.1)")
    parser.add_argument("--budget", type=float, default=2700.0, help="seconds of training at most (default 2700)")
    parser.add_argument("--meta-batch-size", type=int, default=4, help="tasks per outer step (default 4)")
    parser.add_argument("--query-per-class", type=int, default=8, help="training queries per class (default 8)")
    parser.add_argument("--outer-lr", type=float, default=1e-3, help="peak AdamW learning rate (default 1e-3)")
    parser.add_argument("--rank", type=int, default=8, help="LoRA rank (default 8)")
    parser.add_argument("--layers", default="2,3,4,5", help="encoder layers with adapters (default 2,3,4,5)")
    parser.add_argument("--max-length", type=int, default=64, help="tokens per text (default 64)")
    parser.add_argument("--val-every", type=int, default=50, help="validate every N steps (default 50)")
    parser.add_argument("--val-episodes", type=int, default=32, help="meta-validation episodes (default 32)")
    parser.add_argument("--reference-per-class", type=int, default=256,
                        help="meta-train examples per class behind the zero-shot classifier (default 256)")
    parser.add_argument("--checkpoint-dir", help="save last/ and best/ here; resume from it")
    parser.add_argument("--retune-prior", action="store_true",
                        help="do not train: re-choose the prior strength of the classifier in --out")
    parser.add_argument("--multiclass", metavar="DIR",
                        help="a saved prototype classifier to adapt the tasks with more classes than the trained "
                             "learner's head (copied into --out)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--seed", type=int, default=0, help="seed of initialization and episodes (default 0)")
    return parser.parse_args(argv)


PRIOR_GRID = (0, 1, 2, 4, 8, 16, 32, 64)


def choose_prior_strength(classifier: SentimentClassifier, suite: object, seed: int) -> None:
    """Set the prior strength from meta-validation episodes (K = 2 and 8) and record the scores.

    One-standard-error rule: the smallest strength whose accuracy is within one standard error of
    the best one's. Meta-validation classes are clothing, like the training ones, so they favour
    the transferred prototypes more than an unseen domain would; the rule leans toward the support.
    """
    if "prototypes" not in classifier.zero_shot_state:
        return
    scores = tune_prior_strength(classifier, suite, grid=PRIOR_GRID, seed=seed)
    best = max(scores.values(), key=lambda score: score["mean"])
    chosen = min((strength for strength, score in scores.items() if score["mean"] >= best["mean"] - best["se"]),
                 key=float)
    classifier.prior_strength = float(chosen)
    classifier.record["prior_strength_scores"] = scores
    print("meta-validation accuracy by prior strength: "
          + ", ".join(f"{strength}: {score['mean']:.4f}" for strength, score in scores.items())
          + f"; best ± s.e. {best['mean']:.4f} ± {best['se']:.4f}; chose {chosen}")


def check_multiclass_folder(folder: str, learners: tuple[str, ...], retune_prior: bool) -> None:
    """Refuse, before any work, a --multiclass that cannot serve as the companion of what is trained."""
    if retune_prior:
        sys.exit("--multiclass attaches a companion to a newly trained classifier; it does nothing with --retune-prior")
    if all(learner_class(name).any_number_of_classes for name in learners):
        sys.exit(f"--multiclass: {', '.join(learners)} already take(s) any number of classes; no companion needed")
    try:
        read_classifier_document(folder)
        companion = read_learner_document(Path(folder) / "learner")["learner"]
    except PersonalizeError as error:
        sys.exit(f"--multiclass: {error}")
    if not learner_class(companion).any_number_of_classes:
        sys.exit(f"--multiclass: {folder} holds a {companion} classifier, whose head has a fixed number of classes; "
                 "it needs one that takes any number (protonet)")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    inner = {name: value for name, value in (("inner_steps", args.inner_steps), ("inner_lr", args.inner_lr))
             if value is not None}
    learners = tuple(args.learner.split(","))
    if inner and (len(learners) > 1 or learner_class(learners[0]).family != "optimization"):
        sys.exit("--inner-steps/--inner-lr set the inner loop of one optimization learner (maml, fomaml, meta-sgd, "
                 f"reptile), not of {args.learner}; selection tries its own grid")
    if args.multiclass:
        check_multiclass_folder(args.multiclass, learners, args.retune_prior)
    started = time.perf_counter()
    suite = load_suite(args.suite)
    if args.retune_prior:
        classifier = SentimentClassifier.load(args.out, device=args.device)
        choose_prior_strength(classifier, suite, args.seed)
        classifier.record["prior_command"] = "python " + " ".join(portable_args(sys.argv))
        classifier.save(args.out, overwrite=True)  # the classifier it loaded: replaced with its new prior
        return
    encoder = load_encoder(device=args.device, max_length=args.max_length)
    multiclass = SentimentClassifier.load(args.multiclass, encoder=encoder) if args.multiclass else None
    fields = {"adapter": AdapterConfig(rank=args.rank, layers=tuple(int(i) for i in args.layers.split(","))),
              "head": HeadConfig(num_classes=suite.spec.ways), "seed": args.seed}
    fields.update(inner)
    fit = MetaFitConfig(steps=args.steps, meta_batch_size=args.meta_batch_size, outer_lr=args.outer_lr,
                        train_query_per_class=args.query_per_class, val_every=args.val_every,
                        val_episodes=args.val_episodes, checkpoint_dir=args.checkpoint_dir, seed=args.seed)
    if len(learners) > 1:
        learner = select_learner(suite, encoder, SelectionConfig(learners=learners, budget_s=args.budget, fit=fit,
                                                                 learner_fields=fields))
    else:
        learner = meta_fit(create_learner(learners[0], encoder, **fields), suite,
                           dataclasses.replace(fit, time_budget_s=args.budget))
    texts, labels = reference_examples(suite, per_class=args.reference_per_class, seed=args.seed)
    record = {
        **learner.record,
        "command": "python " + " ".join(portable_args(sys.argv)),
        "suite": suite.name,
        "seed": args.seed,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "device": str(encoder.device),
        "machine": machine(),
    }
    classifier = SentimentClassifier.build(learner, texts, labels, record=record, multiclass=multiclass)
    choose_prior_strength(classifier, suite, args.seed)
    classifier.save(args.out, overwrite=True)  # replaces a classifier at --out (e.g. the shipped one), nothing else
    print(f"saved {learner.name} to {args.out}: best meta-validation loss {learner.record['best_val_loss']:.4f} "
          f"at step {learner.record['best_step']} after {record['wall_seconds']:.0f} s")


if __name__ == "__main__":
    main()
