"""picwish-ops status | redrive | dlq | backfill — against a deployed stack (`--stack NAME`, the usual AWS
credentials) or the local one (`--local`, reading .local/stack.json)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
# `make stack` writes it in the checkout; installed from the wheel, the command looks in the working directory.
LOCAL_INFO = (CHECKOUT if (CHECKOUT / "template.yaml").is_file() else Path.cwd()) / ".local" / "stack.json"
EXTRA_HINT = "pip install 'picwish-visual[ops]'"

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
CONFIRM_OVER = 50  # objects: a larger backfill asks before it starts, unless --yes


def since(value: str, now: datetime | None = None) -> datetime:
    """`24h`, `30m`, `7d`, or an ISO time."""
    now = now or datetime.now(UTC)
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", value.strip())
    if match:
        return now - timedelta(seconds=float(match[1]) * UNITS[match[2]])
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        rule = f"--since: a duration like 24h, 30m, 7d or an ISO time; got {value!r}"
        raise argparse.ArgumentTypeError(rule) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _prog() -> str:
    """How the user started it: the console script's name, else `python -m <this package>`."""
    name = Path(sys.argv[0]).name
    return name if name and not name.startswith("__main__") else f"python -m {__package__}"


def _version() -> str:
    try:
        return metadata.version("picwish-visual")
    except metadata.PackageNotFoundError:
        return "(checkout)"


def _where(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """Which stack: before the subcommand or after it (`picwish-ops status --local` as `picwish-ops --local
    status`). Given in both places, the one after the subcommand wins."""
    default = None if top else argparse.SUPPRESS
    group = parser.add_mutually_exclusive_group()
    local = False if top else argparse.SUPPRESS
    group.add_argument("--local", action="store_true", default=local, help="the local stack (make stack)")
    group.add_argument("--stack", default=default, help="a deployed stack's name")
    parser.add_argument("--region", default=default)
    parser.add_argument(
        "--stack-file", type=Path, default=LOCAL_INFO if top else argparse.SUPPRESS, help=argparse.SUPPRESS
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=_prog(), description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    _where(parser, top=True)
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser(
        "status",
        help="in flight (waiting, processing), the queue's end, ended by outcome and reason, API calls, credits",
    )
    show.add_argument("--since", type=since, default="24h")
    show.add_argument("--json", action="store_true", help="one JSON object")
    again = commands.add_parser("redrive", help="run failed uploads again (a dry run unless --yes)")
    again.add_argument("--since", type=since, default="7d")
    again.add_argument("--reason", help='only failures with this reason (a glob: "task failed", "timeout*")')
    again.add_argument("--prefix", help="only uploads whose key starts with this (incoming/idphoto/…)")
    again.add_argument("--include-ambiguous", action="store_true", help="also ambiguous creates (may pay twice)")
    mode = again.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="list what would run (the default)")
    mode.add_argument("--yes", action="store_true", help="run them")
    again.add_argument("--json", action="store_true")
    letters = commands.add_parser("dlq", help="what the dead-letter queue holds, and re-drive it (with --yes)")
    letters.add_argument("--yes", action="store_true", help="re-drive every message to its function")
    letters.add_argument("--json", action="store_true")
    fill = commands.add_parser("backfill", help="process images already under incoming/PREFIX (the bill first)")
    fill.add_argument("prefix", metavar="PREFIX", help="under incoming/: idphoto/2024/ (or incoming/idphoto/2024/)")
    fill.add_argument("--reprocess", action="store_true", help="also images that have a result (paid again)")
    fill.add_argument("--dry-run", action="store_true", help="the bill: what would run and skip, credits, time, cost")
    fill.add_argument("--yes", action="store_true", help=f"start without asking (asked past {CONFIRM_OVER} images)")
    fill.add_argument(
        "--jobs",
        type=int,
        help="the backfill's jobs in flight at most (default: enough for the QPS, and at most half "
        "of a function's concurrency where the stack bounds it)",
    )
    fill.add_argument("--json", action="store_true")
    for sub in (show, again, letters, fill):
        _where(sub, top=False)
    args = parser.parse_args(argv)
    if not args.local and not args.stack:
        parser.error("say which stack: --local (the local stack) or --stack NAME (a deployed one)")
    if args.local and args.stack:
        parser.error("argument --stack: not allowed with argument --local")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if importlib.util.find_spec("boto3") is None:
        sys.stderr.write(f"{_prog()}: it talks to AWS through boto3: {EXTRA_HINT}\n")
        return 2
    from . import redrive as redriving
    from . import status as statuses
    from .target import Target

    target = Target.local(args.stack_file) if args.local else Target.deployed(args.stack, args.region)
    if args.command == "status":
        report = statuses.status(target, args.since)
        print(json.dumps(report, default=str) if args.json else statuses.render(report))
        return 0
    if args.command == "dlq":
        return _dlq(target, args)
    if args.command == "backfill":
        return _backfill(target, args)
    s3 = target.client("s3")
    candidates = redriving.plan(
        target,
        s3,
        args.since,
        reason=args.reason,
        prefix=args.prefix,
        include_ambiguous=args.include_ambiguous,
        progress=_progress,
    )
    sfn = target.client("stepfunctions")
    started = redriving.redrive(target, s3, candidates, sfn, progress=_progress) if args.yes else []
    if args.json:
        rows = [{"upload": c.upload, "reason": c.reason, "decision": c.decision} for c in candidates]
        print(json.dumps({"candidates": rows, "redriven": started, "dry_run": not args.yes}))
    else:
        for c in candidates:
            runs = c.decision in ("redrive", "resume")
            print(f"{c.decision:<10} {c.upload}  ({c.reason})" if runs else f"{c.upload}: {c.decision}")
        todo = sum(1 for c in candidates if c.decision in ("redrive", "resume"))
        print(f"{len(started)} redriven" if args.yes else f"{todo} would be redriven: run again with --yes")
    return 0


def _progress(line: str) -> None:
    """A long command's progress, on stderr: stdout stays the answer (JSON with --json)."""
    sys.stderr.write(f"{_prog()}: {line}\n")
    sys.stderr.flush()


def _backfill(target, args: argparse.Namespace) -> int:
    from . import backfill
    from . import status as statuses

    s3 = target.client("s3")
    if args.dry_run:
        decisions, sizes = backfill.plan(target, s3, args.prefix, reprocess=args.reprocess, progress=_progress)
        queued = statuses.queue_ends_in(target, target.client("dynamodb")) or 0.0
        bill = backfill.Bill(backfill.full_prefix(args.prefix), decisions, sizes, target.qps, queued)
        summary = bill.summary(live_share=target.live_share)
        print(json.dumps(summary, default=dict) if args.json else backfill.render(summary))
        return 0
    listed = len(backfill.listing(s3, target.input_bucket, backfill.full_prefix(args.prefix)))
    if listed > CONFIRM_OVER and not args.yes and not _confirmed(listed, args.prefix):
        print("not started")
        return 1
    sfn = target.client("stepfunctions")
    arn = backfill.start(target, sfn, args.prefix, reprocess=args.reprocess, jobs=args.jobs)
    print(json.dumps({"execution": arn, "listed": listed}) if args.json else f"started {arn} over {listed} objects")
    return 0


def _confirmed(listed: int, prefix: str) -> bool:
    """Asked on the terminal; anything but yes (or no terminal at all) is a no."""
    if not sys.stdin.isatty():
        sys.stderr.write(f"{_prog()}: {listed} objects under {prefix}: --yes to start without asking\n")
        return False
    answer = input(f"{listed} objects under {prefix} (see --dry-run for the bill). Start? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def _dlq(target, args: argparse.Namespace) -> int:
    from . import dlq

    sqs = target.client("sqs")
    letters = dlq.read(target, sqs)
    if args.yes:
        redriven = dlq.redrive(target, sqs, target.client("lambda"), letters)
    else:
        dlq.release(target, sqs, letters)
        redriven = 0
    rows = [{"function": x.function, "keys": list(x.keys), "error": x.error} for x in letters]
    if args.json:
        print(json.dumps({"messages": rows, "redriven": redriven, "dry_run": not args.yes}))
        return 0
    for row in rows:
        print(f"{row['function']:<9} {', '.join(row['keys'])}  ({row['error']})")
    print(f"{redriven} re-driven" if args.yes else f"{len(rows)} in the dead-letter queue: run again with --yes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
