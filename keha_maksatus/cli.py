"""Command-line parts that need no Dagster: `keha-maksatus sample`.

`keha-maksatus run` lives in pipelines/cli.py, which extends this parser.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from keha_maksatus.errors import ConfigurationError, OperatorError
from keha_maksatus.sample import write_sample


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="keha-maksatus", description="KEHA-keskus payment-service KPI pipeline.")
    parser.add_argument("--debug", action="store_true", help="on failure, print the full trace before the one-line error")
    commands = parser.add_subparsers(dest="command", required=True)
    sample = commands.add_parser("sample", help="write a deterministic sample landing folder")
    sample.add_argument("--out", type=Path, required=True, help="folder to write the export files into")
    sample.add_argument("--decisions", type=int, default=6000, help="payment applications (default 6000)")
    sample.add_argument("--feedback", type=int, default=3000, help="survey responses (default 3000)")
    sample.add_argument("--seed", type=int, default=2022, help="random seed (default 2022)")
    sample.add_argument("--first-year", type=int, default=2021)
    sample.add_argument("--last-year", type=int, default=2022)
    sample.add_argument("--csv-only", action="store_true", help="only Finnish CSV extracts (for scale data)")
    sample.add_argument("--no-bad-rows", action="store_true", help="leave out the deliberately bad rows")
    add_debug_flag(sample)
    sample.set_defaults(handler=run_sample)
    return parser


def add_debug_flag(command: argparse.ArgumentParser) -> None:
    """`--debug` also after the command name (`keha-maksatus run --debug`)."""
    command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="on failure, print the full trace")


def run_sample(args: argparse.Namespace) -> int:
    if args.out.exists() and not args.out.is_dir():
        raise ConfigurationError(f"--out {args.out} is a file; give the folder to write the sample exports into")
    try:
        files = write_sample(
            args.out, decisions=args.decisions, feedback=args.feedback, seed=args.seed, csv_only=args.csv_only,
            first_year=args.first_year, last_year=args.last_year, bad_rows=not args.no_bad_rows,
        )
    except OSError as error:
        raise OperatorError(
            f"cannot write the sample into {args.out}: {error.strerror or error}"
            f"{f' ({error.filename})' if error.filename else ''}; give --out a writable folder"
        ) from error
    for path in files:
        print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)
