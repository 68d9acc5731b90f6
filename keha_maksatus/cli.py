"""Command-line parts that need no Dagster: `keha-maksatus sample`, `keha-maksatus backtest`
and `keha-maksatus explain`.

`keha-maksatus run` lives in pipelines/cli.py, which extends this parser.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import polars as pl

from keha_maksatus.config import DEFAULT_LANDING, DEFAULT_WAREHOUSE, INDICATORS, PROCESSING_TIME, REPO_ROOT, SATISFACTION, load_settings
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
    explain = commands.add_parser(
        "explain", help="why a quality-section figure changed between two publications, runs or dates: its parts, by extract"
    )
    explain.add_argument("period", help="reporting period, e.g. 1-6/2022 or 1-12/2022")
    explain.add_argument("--from", dest="start", metavar="POINT",
                         help="a Dagster run id or number of a publication, or a date (2022-06-30 or 30.6.2022): the files "
                              "ingested then (default: the publication before --to)")
    explain.add_argument("--to", dest="end", metavar="POINT", help="as --from (default: the newest publication)")
    explain.add_argument("--indicator", choices=("processing", "satisfaction", "both"), default="both",
                         help="processing time, satisfaction or both (default both)")
    explain.add_argument("--warehouse", type=Path, default=DEFAULT_WAREHOUSE,
                         help=f"published DuckDB file, opened read-only (default {DEFAULT_WAREHOUSE})")
    explain.add_argument("--top", type=int, default=10, help="applications listed as the largest movers (default 10)")
    add_debug_flag(explain)
    explain.set_defaults(handler=run_explain)
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


def run_explain(args: argparse.Namespace) -> int:
    if args.top < 0:
        raise ConfigurationError("--top must be 0 or more")
    print(explain_text(args.warehouse, args.period, args.start, args.end, args.indicator, args.top), end="")
    return 0


EXPLAIN_INDICATORS = {"processing": (PROCESSING_TIME,), "satisfaction": (SATISFACTION,), "both": (PROCESSING_TIME, SATISFACTION)}


def explain_text(warehouse: Path, period: str, start: str | None, end: str | None, indicator: str = "both", top: int = 10) -> str:
    """What `keha-maksatus explain` prints: each indicator's value at both points, the
    parts of the change by extract, their sum, and the applications that moved it most."""
    from keha_maksatus.history import changes, versions
    from keha_maksatus.outputs.publish import open_published

    label, _, _ = changes.parse_period(period)
    path = Path(os.path.abspath(Path(warehouse).expanduser()))
    if not path.is_file():
        raise ConfigurationError(f"no published warehouse at {path}; run `keha-maksatus run --warehouse {path}` first or give --warehouse the published file")
    con = open_published(path)
    try:
        if not _has_row_history(con):
            raise ConfigurationError(f"{path} keeps no row history (history.decisions); publish it once with this version, then explain")
        end = end if end is not None else str(_publication_before(con, None, "--to"))
        start = start if start is not None else str(_publication_before(con, end, "--from"))
        end_point, start_point = versions.resolve_point(con, end), versions.resolve_point(con, start)
        indicators = EXPLAIN_INDICATORS[indicator]
        found, items = changes.explain_between(con, start_point.file_ids, end_point.file_ids, [label])
    finally:
        con.close()
    lines = [f"{label}: {start_point.label} -> {end_point.label}"]
    if sorted(set(start_point.file_ids)) == sorted(set(end_point.file_ids)):
        lines.append("No change: both points rest on the same ingested files.")
        return "\n".join(lines) + "\n"
    for name in indicators:
        lines.append("")
        lines.extend(_explain_indicator(name, label, found.filter(pl.col("indicator") == name), items, top))
    return "\n".join(lines) + "\n"


def _has_row_history(con) -> bool:
    return bool(con.execute(
        "SELECT count(*) FROM duckdb_views() WHERE database_name = current_database() AND schema_name = 'history' "
        "AND view_name = 'decisions'"
    ).fetchall()[0][0])


def _publication_before(con, point: str | None, option: str) -> int:
    """The number of the newest publication (point None), or of the one before the
    publication `point` names (a run id or number)."""
    publications = con.execute("SELECT publication_no, run_id FROM meta.publication ORDER BY publication_no").fetchall() \
        if _has_table(con, "meta", "publication") else []
    limit = None
    if point is not None:
        named = [n for n, run_id in publications if run_id == point.strip() or str(n) == point.strip()]
        if not named:
            raise ConfigurationError(f"--to {point} is no publication, so there is no publication before it; give --from too")
        limit = named[0]
    numbers = [n for n, _ in publications if limit is None or n < limit]
    if not numbers:
        raise ConfigurationError(
            f"no publication to take {option} from; give {option} a run id, publication number or date "
            "(SELECT publication_no, run_id, published_at FROM history.publication lists them)"
        )
    return numbers[-1]


def _has_table(con, schema: str, table: str) -> bool:
    return bool(con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = ? AND table_name = ?",
        [schema, table],
    ).fetchall()[0][0])


def _explain_indicator(name: str, label: str, found: pl.DataFrame, items: pl.DataFrame, top: int) -> list[str]:
    from keha_maksatus.history.changes import PART_LABELS_FI, QUARANTINED_PART
    from keha_maksatus.kpi import MIN_CELL_RESPONSES
    from keha_maksatus.outputs import finnish
    from keha_maksatus.outputs.disclosure import history_for_people

    lines = [f"{INDICATORS[name]} ({name}), {label}"]
    rows = found.filter(pl.col("period_label") == label)
    rejected = [
        f"  Rows newly rejected (quarantine), changing no figure (their period is not known): {r['items']} in "
        f"{r['file_name']} (file {r['file_id']})"
        for r in found.filter(pl.col("part") == QUARANTINED_PART).iter_rows(named=True)
    ]
    if rows.is_empty():
        return lines + ["  No change: no application or response counted in this period differs between the two points.", *rejected]
    # The under-5 rule of the published outputs (disclosure.history_for_people): a
    # satisfaction value on fewer than 5 responses is withheld, and so is every part when
    # any of them rests on so few.
    people = history_for_people({"history.changes": rows})["history.changes"]
    first = people.row(0, named=True)
    hide_from, hide_to = first["suppressed_from"], first["suppressed_to"]
    hide_parts = bool(people["contribution_suppressed"].any())
    decimals = finnish.DECIMALS[name]  # as the report shows the values
    lines[0] += " (closed)" if first["complete"] else " (still running)"
    first = rows.row(0, named=True)  # the exact values, shown only where not withheld

    def value(v, n, hidden):
        if v is not None and hidden:
            return f"withheld (n {n}, under {MIN_CELL_RESPONSES} responses)"
        return f"{'none' if v is None else f'{v:.{decimals}f}'} (n {n})"

    defined = first["value_from"] is not None and first["value_to"] is not None
    change = first["value_to"] - first["value_from"] if defined else None
    text = f"  value: {value(first['value_from'], first['n_from'], hide_from)} -> {value(first['value_to'], first['n_to'], hide_to)}"
    if defined and not (hide_from or hide_to):
        text += f", change {change:+.4f}"
    lines.append(text)
    if not defined:
        lines.append("  No decomposition: the mean is undefined on one side (n = 0); the parts that changed:")
    elif hide_parts:
        lines.append(f"  Contributions withheld: a part rests on fewer than {MIN_CELL_RESPONSES} responses.")
    width = max(len(PART_LABELS_FI[p]) for p in rows["part"])
    lines.append(f"  {'part':<{width}}  {'items':>6}  {'contribution':>12}  extract")
    for row in rows.iter_rows(named=True):
        shown = "-" if row["contribution"] is None or hide_parts else f"{row['contribution']:+.4f}"
        lines.append(f"  {PART_LABELS_FI[row['part']]:<{width}}  {row['items']:>6}  {shown:>12}  {row['file_name']} (file {row['file_id']})")
    if defined and not hide_parts:
        total = rows["contribution"].sum()
        lines.append(f"  {'sum of the parts':<{width}}  {'':>6}  {total:>+12.4f}  = the change {change:+.4f}")
    lines.extend(rejected)
    items = items.filter((pl.col("indicator") == name) & (pl.col("period_label") == label))
    if name == PROCESSING_TIME and top and items.height:
        movers = items.head(top)
        lines.append("  applications that moved it most (hakemus_id, days in the mean before -> after):")
        for item in movers.iter_rows(named=True):
            days = " -> ".join("-" if v is None else f"{v:.0f}" for v in (item["value_from"], item["value_to"]))
            shown = "-" if item["contribution"] is None else f"{item['contribution']:+.4f}"
            lines.append(f"    {item['item_id']}  {PART_LABELS_FI[item['part']]}  {days} d  {shown}  {item['file_name']}")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)
