"""The batch commands of the ``personalize`` CLI: adapt every user of a log into a bank, read banks back.

    personalize adapt-users LOG --out BANK [--model movielens] [--top N] [--batch-users N] [ENGINE]
    personalize adapt-tasks FRAME --out BANK [--model sentiment] [--batch-tasks N] [ENGINE]
        ENGINE: [--engine local|ray] [--address auto|ray://HOST:10001] [--workers N]
    personalize bank verify BANK | bank get BANK ID [--top N] | bank export BANK ID DIR
    personalize data synth --users N [--items M] [--ratings-per-user R] [--seed S] --out DIR
"""

from __future__ import annotations

import argparse
from typing import Any

from personalize.errors import BankError


def cmd_adapt_users(args: argparse.Namespace) -> None:
    from personalize.jobs.users import adapt_users
    from personalize.recommend import Columns

    columns = Columns(user=args.user_column, item=args.item_column, rating=args.rating_column)
    summary = adapt_users(args.log, args.model, args.out, top=args.top, batch_users=args.batch_users,
                          columns=columns, progress=not args.no_progress, **_engine_options(args))
    for line in summary.lines():
        print(line)


def cmd_adapt_tasks(args: argparse.Namespace) -> None:
    from personalize.jobs.tasks import TaskColumns, adapt_tasks_job

    columns = TaskColumns(task=args.task_column, text=args.text_column, label=args.label_column)
    summary = adapt_tasks_job(args.frame, args.model, args.out, batch_tasks=args.batch_tasks, columns=columns,
                              progress=not args.no_progress, **_engine_options(args))
    for line in summary.lines(noun="tasks"):
        print(line)


def cmd_bank_verify(args: argparse.Namespace) -> None:
    from personalize.bank import StateBank

    bank = StateBank(args.bank)
    report = bank.verify()
    print(f"{args.bank}: {report.users:,} {bank.kind} states in {report.parts} part(s), {report.rows:,} rows checked")
    if not report.ok:
        raise BankError("; ".join(report.problems))
    print("ok: every state matches its checksum")


def cmd_bank_get(args: argparse.Namespace) -> None:
    from personalize.bank import StateBank
    from personalize.cli import print_table

    bank = StateBank(args.bank)
    user = _parse_id(bank, args.id)
    model = bank.get(user)
    entry = bank.entry(user)
    print(f"{user!r}: part {entry['part']}, {entry['count']} rating(s) or example(s), model {bank.model_source}")
    if hasattr(model, "recommend"):
        print_table(model.recommend(n=args.top).drop("std").to_dicts())
    else:
        print(f"classes {model.classes}")


def cmd_bank_export(args: argparse.Namespace) -> None:
    from personalize.bank import StateBank

    bank = StateBank(args.bank)
    print(f"wrote {bank.export(_parse_id(bank, args.id), args.folder)}")


def cmd_data_synth(args: argparse.Namespace) -> None:
    from personalize.data.synthetic import write_synthetic
    from personalize.loading import load

    write_synthetic(args.out, load(args.model), users=args.users, items=args.items,
                    ratings_per_user=args.ratings_per_user, seed=args.seed)


def _engine_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"engine": args.engine, "address": args.address, "workers": args.workers}


def _add_job_options(parser: argparse.ArgumentParser, source: str, source_help: str, default_model: str,
                     noun: str) -> None:
    """The input, --out, --model, --batch-NOUN, --no-progress and the engine options of a batch job."""
    parser.add_argument(source, help=source_help)
    parser.add_argument("--out", required=True, help="the bank folder (created, or resumed when it exists)")
    parser.add_argument("--model", default=default_model, help=f"shipped model name or saved folder "
                                                               f"(default {default_model})")
    parser.add_argument(f"--batch-{noun}", type=_positive, default=4096 if noun == "users" else 256,
                        help=f"{noun} per batched call and bank part")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_engine_options(parser)


def _add_engine_options(parser: argparse.ArgumentParser) -> None:
    """--engine, --address, --workers: checked by the job (an unknown engine is refused in one line)."""
    parser.add_argument("--engine", default="local", metavar="{local,ray}",
                        help="where chunks are adapted: in this process (default) or on Ray workers "
                             "(pip install personalize[ray]); the driver writes the same bank either way")
    parser.add_argument("--address", help="with --engine ray: the cluster, 'auto' (started by `ray start` here) "
                                          "or ray://HOST:10001; default: start a local Ray instance")
    parser.add_argument("--workers", type=_positive, help="with --engine ray: Ray workers (default: one per CPU)")


def _parse_id(bank: Any, text: str) -> Any:
    if bank.document["id_dtype"] == "Int64":
        try:
            return int(text)
        except ValueError:
            raise BankError(f"this bank's ids are integers; {text!r} is not one") from None
    return text


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def register(groups: Any, data_commands: Any) -> None:
    """Add the batch commands to the CLI's subcommand groups."""
    users = groups.add_parser("adapt-users", help="adapt a recommender to every user of a rating log, into a bank")
    _add_job_options(users, "log", "a .parquet/.csv/.tsv file or a folder of .parquet files; each user's rows together",
                     "movielens", "users")
    users.add_argument("--top", type=_positive, help="also write each user's N best unrated items to OUT/top/")
    users.add_argument("--user-column", default="user_id")
    users.add_argument("--item-column", default="item_id")
    users.add_argument("--rating-column", default="rating")
    users.set_defaults(handler=cmd_adapt_users)

    tasks = groups.add_parser("adapt-tasks", help="adapt a text classifier to every task of a frame, into a bank")
    _add_job_options(tasks, "frame", "a .parquet/.csv/.tsv file or a folder of .parquet files of task, text, "
                                     "label rows; each task's rows together", "sentiment", "tasks")
    tasks.add_argument("--task-column", default="task")
    tasks.add_argument("--text-column", default="text")
    tasks.add_argument("--label-column", default="label")
    tasks.set_defaults(handler=cmd_adapt_tasks)

    bank = groups.add_parser("bank", help="check a state bank, read a user back, export a user's adapter")
    commands = bank.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    verify = commands.add_parser("verify", help="re-read every state and check its checksum")
    verify.add_argument("bank")
    verify.set_defaults(handler=cmd_bank_verify)
    get = commands.add_parser("get", help="one user's model: their top items")
    get.add_argument("bank")
    get.add_argument("id")
    get.add_argument("--top", type=_positive, default=10)
    get.set_defaults(handler=cmd_bank_get)
    export = commands.add_parser("export", help="write one task's adapter as a PEFT folder")
    export.add_argument("bank")
    export.add_argument("id")
    export.add_argument("folder")
    export.set_defaults(handler=cmd_bank_export)

    synth = data_commands.add_parser("synth", help="a synthetic rating log and model of any size, for scale tests")
    synth.add_argument("--users", type=_positive, required=True)
    synth.add_argument("--items", type=_positive, help="catalogue size (default: the model's own items)")
    synth.add_argument("--ratings-per-user", type=float, default=20.0, help="mean ratings per user (long-tailed)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--model", default="movielens", help="the fitted recommender to draw from")
    synth.add_argument("--out", required=True, help="an empty or new folder: writes ratings/ and model/")
    synth.set_defaults(handler=cmd_data_synth)
