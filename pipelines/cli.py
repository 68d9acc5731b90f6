"""`keha-maksatus run`: the whole pipeline in-process through the same Definitions."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import dagster as dg
import duckdb

from keha_maksatus import cli as library_cli
from keha_maksatus.config import DEFAULT_LANDING, DEFAULT_WAREHOUSE
from keha_maksatus.privacy import MissingKeyError, resolve_key
from keha_maksatus.publish import output_folders
from keha_maksatus.report import REPORT_NAME


def build_parser() -> argparse.ArgumentParser:
    parser = library_cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    run = commands.add_parser("run", help="ingest, validate, compute the KPIs and publish")
    run.add_argument("--landing", type=Path, default=DEFAULT_LANDING, help=f"landing folder (default {DEFAULT_LANDING})")
    run.add_argument("--warehouse", type=Path, default=DEFAULT_WAREHOUSE, help=f"published DuckDB file (default {DEFAULT_WAREHOUSE})")
    run.set_defaults(handler=run_pipeline)
    return parser


def run_pipeline(args: argparse.Namespace) -> int:
    landing, published = args.landing.resolve(), args.warehouse.resolve()
    if not landing.is_dir():
        print(f"error: landing folder {landing} does not exist", file=sys.stderr)
        return 2
    try:
        _, is_demo = resolve_key(landing)
    except MissingKeyError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if is_demo:
        print("warning: KEHA_PSEUDONYM_KEY is not set; using the demo key, valid only for the bundled sample data.", file=sys.stderr)

    from pipelines.definitions import build_definitions

    defs = build_definitions(str(landing), str(published))
    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()
    with instance:
        result = defs.resolve_job_def("nightly").execute_in_process(
            instance=instance,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
        )
        failures = _failures(result)
    if not result.success or failures["blocking"]:
        print("\nThe run did not publish; the previously published warehouse is unchanged.", file=sys.stderr)
        for line in failures["blocking"] + failures["steps"]:
            print(f"  - {line}", file=sys.stderr)
        print(f"Dagster run: {result.run_id} (the Dagster UI shows its steps and checks: make dev)", file=sys.stderr)
        return 1
    for line in failures["errors"]:
        print(f"ERROR check: {line}", file=sys.stderr)
    _print_results(published, landing, result.run_id)
    return 0


def _failures(result) -> dict[str, list[str]]:
    found = {"blocking": [], "errors": [], "steps": []}
    for evaluation in result.get_asset_check_evaluations():
        if evaluation.passed:
            continue
        details = {k: v.value for k, v in evaluation.metadata.items() if k in ("message", "details", "files_held_back")}
        text = f"{evaluation.asset_key.to_user_string()} / {evaluation.check_name}: {details}"
        if evaluation.blocking:
            found["blocking"].append(text)
        elif evaluation.severity == dg.AssetCheckSeverity.ERROR:
            found["errors"].append(text)
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            error = event.event_specific_data.error
            found["steps"].append(f"step {event.step_key} failed: {error.message.strip() if error else ''}")
    return found


def _print_results(published: Path, landing: Path, run_id: str) -> None:
    con = duckdb.connect(str(published), read_only=True)
    try:
        rows = con.execute(
            """
            SELECT period_label, indicator, complete, target_op, target, value, n, met
            FROM kpi.quality_section ORDER BY period_start, period_end, indicator
            """
        ).fetchall()
        ingest = con.execute(
            "SELECT count(*), sum(rows_read), sum(rows_valid), sum(rows_rejected), count(*) FILTER (status <> 'ingested') FROM quality.ingest_log"
        ).fetchall()[0]
    finally:
        con.close()
    print("\nkpi.quality_section")
    print(f"{'period':<10} {'indicator':<29} {'complete':<8} {'target':>7} {'value':>7} {'n':>7} {'met':<5}")
    for period, indicator, complete, op, target, value, n, met in rows:
        target_text = f"{op} {target:.1f}" if target is not None else "-"
        decimals = 2 if indicator.endswith("tyytyvaisyys") else 1
        value_text = f"{value:.{decimals}f}" if value is not None else "-"
        print(f"{period:<10} {indicator:<29} {str(complete).lower():<8} {target_text:>7} {value_text:>7} {n:>7} {'-' if met is None else str(met).lower():<5}")
    print(
        f"\nFiles in the ingest log: {ingest[0]} ({ingest[4]} not ingested); rows read {ingest[1]}, "
        f"valid {ingest[2]}, rejected {ingest[3]} (see quality.quarantine)."
    )
    outputs = output_folders(published)
    print(f"Landing folder:      {landing}")
    print(f"Published warehouse: {published}  (open read-only: duckdb -readonly {published})")
    print(f"Quality report:      {outputs.report / (REPORT_NAME + '.html')}  (and .md)")
    print(f"Dashboards:          {outputs.dashboards / 'index.html'}")
    print(f"Exports:             {outputs.exports}/  (.xlsx, .csv, .parquet)")
    print(f"Dagster run:         {run_id}  (make dev, then http://127.0.0.1:3000)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


def console_main() -> None:
    """The `keha-maksatus` command. Once the command has finished and closed its files,
    leave without the interpreter's teardown: finalising Dagster, pandera and polars
    modules takes another half second to a second, a fifth of a nightly run's time."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    console_main()
