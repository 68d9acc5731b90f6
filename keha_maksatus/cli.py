"""Command-line parts that need no Dagster: `keha-maksatus sample` and `keha-maksatus backtest`.

`keha-maksatus run` lives in pipelines/cli.py, which extends this parser.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from keha_maksatus.config import DEFAULT_LANDING, REPO_ROOT, load_settings
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
    backtest = commands.add_parser(
        "backtest", help="backtest the year-end nowcast on generated data and the bundled sample (coverage, MAE, Brier)"
    )
    backtest.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "backtest",
                          help="folder for the landing folders, warehouses, CSVs and plot (default build/backtest)")
    backtest.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5], help="generator seeds (default 1 2 3 4 5)")
    backtest.add_argument("--decisions", type=int, default=60_000, help="payment applications per seed (default 60000)")
    backtest.add_argument("--feedback", type=int, default=30_000, help="survey responses per seed (default 30000)")
    backtest.add_argument("--sample", type=Path, default=DEFAULT_LANDING, help="the bundled sample landing folder (default data/sample)")
    backtest.add_argument("--no-sample", dest="sample", action="store_const", const=None, help="leave the bundled sample out")
    backtest.add_argument("--draws", type=int, default=None, help="simulated values per forecast (default: the nowcast's)")
    backtest.add_argument("--doc", type=Path, help="update the generated block of this Markdown file (docs/forecast.md) and copy the plot beside it")
    add_debug_flag(backtest)
    backtest.set_defaults(handler=run_backtest)
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


def run_backtest(args: argparse.Namespace) -> int:
    from keha_maksatus.forecast import backtest
    from keha_maksatus.forecast.nowcast import DRAWS

    if args.sample is not None and not args.sample.is_dir():
        raise ConfigurationError(f"--sample {args.sample} is not a folder; give the bundled sample landing folder or --no-sample")
    if args.doc is not None and not args.doc.is_file():
        raise ConfigurationError(f"--doc {args.doc} is not a file; give the Markdown file with the backtest block (docs/forecast.md)")
    if min(args.decisions, args.feedback) < 1 or (args.draws is not None and args.draws < 1):
        raise ConfigurationError("--decisions, --feedback and --draws must be positive")
    result = backtest.run(
        args.out, load_settings(), seeds=args.seeds, decisions=args.decisions, feedback=args.feedback, sample=args.sample,
        draws=args.draws or DRAWS, log=lambda line: print(line, flush=True),
    )
    print()
    print(result.markdown)
    if args.doc is not None:
        figure = next((f for f in result.files if f.suffix == ".png"), None)
        backtest.update_doc(args.doc, result.markdown, figure)
        print(f"updated {args.doc}" + (f" and {args.doc.parent / figure.name}" if figure else ""))
    print(f"written: {', '.join(str(f) for f in result.files)}")
    print(f"backtest took {result.seconds:.0f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)
