"""`keha-maksatus run`: the whole pipeline in-process through the same Definitions.

Every failure ends in one line on stderr, `error: <what failed, why, what to do>`, and
exit code 1 (the run failed) or 2 (usage or configuration); `--debug` adds the trace.
The run is recorded in the Dagster instance of DAGSTER_HOME, by default this repo's own
(the one `make dev` shows).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import traceback
import uuid
import warnings
from pathlib import Path

import dagster as dg
import duckdb
import yaml
from dagster._core.instance.ref import InstanceRef

from keha_maksatus import cli as library_cli
from keha_maksatus import state
from keha_maksatus.config import DEFAULT_LANDING, DEFAULT_WAREHOUSE, REPO_ROOT, load_settings
from keha_maksatus.errors import ConfigurationError, NothingToIngestError, OperatorError, exit_codes, one_line
from keha_maksatus.history import as_of as as_of_build
from keha_maksatus.kpi import MIN_CELL_RESPONSES
from keha_maksatus.ingest import landing as landing_folder
from keha_maksatus.ingest.privacy import MissingKeyError, mask_string, resolve_key
from keha_maksatus.outputs.publish import open_published, output_folders
from keha_maksatus.outputs.report import REPORT_NAME
from pipelines.sql_shell import sql_command

INSTANCE_FILE = "dagster.yaml"
# Errors that reach the command from inside a Dagster step arrive as a class name.
EXIT_CODES = {**exit_codes(), MissingKeyError.__name__: 2}
MAX_MESSAGE = 400


def build_parser() -> argparse.ArgumentParser:
    parser = library_cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    run = commands.add_parser("run", help="ingest, validate, compute the KPIs and publish (--as-of: figures as of a past date)")
    run.add_argument("--landing", type=Path, default=DEFAULT_LANDING, help=f"landing folder (default {DEFAULT_LANDING})")
    run.add_argument("--warehouse", type=Path, default=DEFAULT_WAREHOUSE, help=f"published DuckDB file (default {DEFAULT_WAREHOUSE})")
    run.add_argument(
        "--as-of", dest="as_of", metavar="DATE",
        help="build every KPI table from only the extracts dated on or before DATE (2022-06-30 or 30.6.2022) into a "
             "file of its own instead of publishing; the published warehouse is not touched",
    )
    run.add_argument("--out", type=Path, help="with --as-of: the DuckDB file to write (default beside the warehouse, "
                                               "e.g. maksatus.as-of-2022-06-30.duckdb)")
    library_cli.add_debug_flag(run)
    run.set_defaults(handler=run_pipeline)
    sql = commands.add_parser("sql", help="a read-only SQL shell on the published warehouse (-c: run a query and leave)")
    sql.add_argument("--warehouse", type=Path, default=DEFAULT_WAREHOUSE, help=f"published DuckDB file (default {DEFAULT_WAREHOUSE})")
    sql.add_argument("-c", "--command", dest="query", help="SQL to run (statements end with ;); without it, an interactive shell")
    library_cli.add_debug_flag(sql)
    sql.set_defaults(handler=lambda args: sql_command(Path(os.path.abspath(args.warehouse.expanduser())), args.query))
    return parser


# --- checks before anything is written ------------------------------------------------


def checked_landing(path: Path) -> Path:
    landing = Path(os.path.abspath(path.expanduser()))
    try:
        exists, is_dir = landing.exists(), landing.is_dir()
    except OSError as error:
        raise ConfigurationError(f"cannot reach the landing folder {landing}: {error.strerror}; check the path and its permissions") from error
    if not exists:
        raise ConfigurationError(f"the landing folder {landing} does not exist; give --landing the folder the exports are dropped into")
    if not is_dir:
        raise ConfigurationError(f"--landing {landing} is a file, not a folder; give --landing the folder the exports are dropped into")
    if not os.access(landing, os.R_OK | os.X_OK):
        raise ConfigurationError(f"the landing folder {landing} cannot be read (permission denied); give this user read access to it")
    return landing


def checked_warehouse(path: Path, landing: Path) -> Path:
    published = Path(os.path.abspath(path.expanduser()))
    if published.is_dir():
        raise ConfigurationError(
            f"--warehouse {published} is a folder; give the path of the DuckDB file to publish, e.g. {published / 'maksatus.duckdb'}"
        )
    if published.is_relative_to(landing):
        raise ConfigurationError(
            f"--warehouse {published} is inside the landing folder {landing}; publish outside it, so that the warehouse "
            f"is never read as an export"
        )
    existing = published.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigurationError(
            f"cannot create the warehouse folder {published.parent}: {existing} is a file; give --warehouse a path in a folder"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "the warehouse folder" if existing == published.parent else f"the warehouse folder {published.parent} cannot be created:"
        raise ConfigurationError(
            f"{what} {existing} is read-only for this user; give --warehouse a path in a writable folder, or grant write access"
        )
    return published


# --- the Dagster instance ---------------------------------------------------------------


def instance_home() -> Path:
    """DAGSTER_HOME, or when unset the repo root: the instance `make dev` shows."""
    configured = os.environ.get("DAGSTER_HOME")
    home = Path(configured).expanduser() if configured else REPO_ROOT
    if not home.is_dir():
        raise ConfigurationError(
            f"DAGSTER_HOME={configured} is not a folder; point it at the folder holding {INSTANCE_FILE} "
            f"(the repo root, as make dev does) or unset it"
        )
    return Path(os.path.abspath(home))


def instance_overrides(home: Path) -> dict:
    """The sections of home's dagster.yaml with a relative `base_dir`, made absolute under
    home. (Dagster itself takes a relative base_dir from the working directory, which
    would scatter run history wherever the command is started.)"""
    path = home / INSTANCE_FILE
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise ConfigurationError(f"cannot read the Dagster instance file {path}: {one_line(error)}; correct or remove it") from error
    if not isinstance(config, dict):
        raise ConfigurationError(f"the Dagster instance file {path} is not a mapping; correct or remove it")

    def anchored(value):
        if isinstance(value, dict):
            return {
                key: str(home / item) if key == "base_dir" and isinstance(item, str) and not os.path.isabs(item) else anchored(item)
                for key, item in value.items()
            }
        return value

    return {section: anchored(value) for section, value in config.items() if anchored(value) != value}


def open_instance(home: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home), overrides=instance_overrides(home)))


# --- the run ----------------------------------------------------------------------------


def run_pipeline(args: argparse.Namespace) -> int:
    if args.out is not None and not args.as_of:
        raise ConfigurationError("--out names the file of figures as of a date; give --as-of DATE with it, or leave --out out")
    as_of = as_of_build.parse_as_of(args.as_of) if args.as_of is not None else None
    landing = checked_landing(args.landing)
    published = checked_warehouse(args.warehouse, landing)
    out = as_of_build.checked_out_path(args.out, published, as_of, landing) if as_of else None
    settings = load_settings()
    key, is_demo = resolve_key(landing)
    files = state.warehouse_files(published)
    state.verify_key(files, key)  # reads only the key check: nothing written yet
    home = instance_home()
    instance_overrides(home)  # a broken dagster.yaml stops the run here, before anything is written
    if is_demo:
        print("warning: KEHA_PSEUDONYM_KEY is not set; using the demo key, valid only for the bundled sample data.", file=sys.stderr)

    from pipelines.assets.history import AS_OF_JOB, FIGURES_AS_OF
    from pipelines.definitions import build_definitions

    if not files.working_file.exists():
        _check_something_to_ingest(files, landing)  # before the state folder is made
    run_id = str(uuid.uuid4())  # known before the run starts, so that a waiting run can name it
    lock = state.RunLock(files)
    lock.acquire(settings.run_lock_wait_seconds, run_id=run_id, on_wait=lambda holder: print(
        f"waiting for the run holding {published} ({holder}) to finish, up to {settings.run_lock_wait_seconds:g} s ...", flush=True
    ))
    try:
        _check_something_to_ingest(files, landing)
        state.claim_key(files, key)
        defs = build_definitions(str(landing), str(published))
        run_config = {"loggers": {"console": {"config": {"log_level": "ERROR" if args.debug else "CRITICAL"}}}}
        if as_of:
            run_config["ops"] = {FIGURES_AS_OF: {"config": {"as_of": as_of.isoformat(), "out": str(out)}}}
        with open_instance(home) as instance:
            result = defs.resolve_job_def(AS_OF_JOB if as_of else "nightly").execute_in_process(
                instance=instance,
                run_id=run_id,
                raise_on_error=False,
                run_config=run_config,
            )
            failure = run_failure(result, published, debug=args.debug)
    finally:
        lock.release()
    if failure:
        raise failure
    for line in _error_checks(result):
        print(f"ERROR check: {line}", file=sys.stderr)
    if as_of:
        _print_as_of_results(out, published, result.run_id, home, new_this_run(result))
    else:
        _print_results(published, landing, result.run_id, home, new_this_run(result))
    return 0


def _check_something_to_ingest(files: state.WarehouseFiles, landing: Path) -> None:
    """An empty landing folder on a new state stops the run (nothing to publish); on a
    state with data the run goes on and republishes what was ingested before."""
    if landing_folder.list_landing_files(landing):
        return
    ingested = state.ingested_file_count(files)
    if not ingested:
        raise NothingToIngestError(
            f"nothing to ingest: the landing folder {landing} holds no export files and nothing was ingested into "
            f"{files.published} before; put the maksatuspaatokset_* and asiakaspalaute_* exports there and run again"
        )
    print(f"note: the landing folder {landing} holds no export files: nothing new to ingest; the figures are "
          f"rebuilt from the {ingested} files ingested before.", flush=True)


def run_failure(result, published: Path, debug: bool = False) -> OperatorError | None:
    """The run's first failure as one operator error (None when the run published)."""
    published_now = any(
        event.event_type_value == "ASSET_MATERIALIZATION" and event.asset_key and event.asset_key.to_user_string() == "published_warehouse"
        for event in result.all_events
    )
    outcome = (
        f"the warehouse {published} was published, but not all of the report, dashboards and exports"
        if published_now else f"nothing was published; the previous warehouse {published} is unchanged"
    )
    for event in result.all_events:
        if event.event_type_value != "STEP_FAILURE":
            continue
        error = event.event_specific_data.error
        if innermost_error(error).cls_name == "DagsterAssetCheckFailedError":
            continue  # a blocking check failed: told below, with the check's own message
        if debug and error:
            print(error.to_string(), file=sys.stderr)
        cause = operator_cause(error)
        if cause:  # our own one-line message, built from masked parts
            failure = OperatorError(f"{error_message(cause, mask=False)} (Dagster run {result.run_id})")
            failure.exit_code = EXIT_CODES[cause.cls_name]
            return failure
        innermost = innermost_error(error)
        return OperatorError(
            f"step {event.step_key} failed: {innermost.cls_name}: {error_message(innermost)}; {outcome}. "
            f"Run again with --debug for the full trace (Dagster run {result.run_id})"
        )
    for evaluation in result.get_asset_check_evaluations():
        if evaluation.blocking and not evaluation.passed:
            message = evaluation.metadata.get("message")
            detail = one_line(message.value if message else "")
            hint = " If the drop in data is expected, run once with KEHA_MIN_DATA_SHARE lowered." if evaluation.check_name == "enough_data_to_publish" else ""
            return OperatorError(
                f"the blocking check {evaluation.check_name} failed: {detail}; {outcome}.{hint} (Dagster run {result.run_id})"
            )
    if not result.success:
        return OperatorError(f"the Dagster run {result.run_id} failed; {outcome}. Run again with --debug, or open the run in the Dagster UI (make dev)")
    return None


def _chain(error):
    while error is not None:
        yield error
        error = error.cause


def operator_cause(error):
    return next((e for e in _chain(error) if e.cls_name in EXIT_CODES), None)


def innermost_error(error):
    return list(_chain(error))[-1]


def error_message(error, mask: bool = True) -> str:
    """An error's message without its class name, on one line; another library's message
    is shortened and has personal data masked (it may quote what it read)."""
    text = one_line(re.sub(rf"^[\w.]*{re.escape(error.cls_name or '')}: ", "", error.message.strip()))
    return shortened(text) if mask else text


def shortened(text: str) -> str:
    """Another library's text on one line, at most MAX_MESSAGE characters, personal data masked."""
    text = one_line(text)
    return mask_string(text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + " ...")


def _error_checks(result) -> list[str]:
    found = []
    for evaluation in result.get_asset_check_evaluations():
        if not evaluation.passed and not evaluation.blocking and evaluation.severity == dg.AssetCheckSeverity.ERROR:
            details = {k: v.value for k, v in evaluation.metadata.items() if k in ("message", "details", "files_held_back")}
            found.append(f"{evaluation.asset_key.to_user_string()} / {evaluation.check_name}: {details}")
    return found


def new_this_run(result) -> dict[str, int]:
    """What the run's ingest step found new: files and rows read, valid and rejected."""
    for materialization in result.asset_materializations_for_node("ingest_landing_folder"):
        if materialization.asset_key.to_user_string() == "ingested_files":
            metadata = materialization.metadata
            return {key: int(metadata[key].value) for key in ("new_files", "rows_read", "rows_valid", "rows_rejected")}
    return {"new_files": 0, "rows_read": 0, "rows_valid": 0, "rows_rejected": 0}


def _print_results(published: Path, landing: Path, run_id: str, home: Path, new: dict[str, int]) -> None:
    try:
        con = open_published(published)
    except (OperatorError, duckdb.Error) as error:
        print(f"\nPublished {published}; its summary cannot be shown now: {one_line(error)}")
        return
    try:
        rows = con.execute(QUALITY_SECTION_QUERY).fetchall()
        ingest = con.execute(
            "SELECT count(*), sum(rows_read), sum(rows_valid), sum(rows_rejected), count(*) FILTER (status <> 'ingested') FROM quality.ingest_log"
        ).fetchall()[0]
        forecasts = con.execute(
            """
            SELECT period_label, indicator, as_of, median, low_80, high_80, probability_meets_target, least(seen_n, expected_n)
            FROM kpi.forecast ORDER BY period_end, indicator
            """
        ).fetchall()
    finally:
        con.close()
    print("\nkpi.quality_section")
    _print_quality_section(rows)
    if forecasts:
        print(f"\nkpi.forecast (year-end nowcast as of {forecasts[0][2]}; kpi.pending_at_risk, kpi.forecast_what_if)")
        print(f"{'period':<10} {'indicator':<29} {'median':>7} {'80 % interval':>15} {'chance of target':>16}")
        for period, indicator, _, median, low, high, probability, n in forecasts:
            decimals = 2 if indicator.endswith("tyytyvaisyys") else 1
            if indicator.endswith("tyytyvaisyys") and n < MIN_CELL_RESPONSES:
                print(f"{period:<10} {indicator:<29} {'withheld: under 5 responses':>40}")
                continue
            chance = "-" if probability is None else f"{probability:.0%}"
            print(f"{period:<10} {indicator:<29} {median:>7.{decimals}f} {f'{low:.{decimals}f}-{high:.{decimals}f}':>15} {chance:>16}")
    _print_new(new)
    print(
        f"All runs: files in the ingest log {ingest[0]} ({ingest[4]} not ingested); rows read {ingest[1]}, "
        f"valid {ingest[2]}, rejected {ingest[3]} (see quality.quarantine)."
    )
    outputs = output_folders(published)
    print(f"Landing folder:      {landing}")
    print(f"Published warehouse: {published}")
    print(f"SQL on it:           keha-maksatus sql --warehouse {published}  (read-only; make sql for the default warehouse)")
    print(f"Quality report:      {outputs.report / (REPORT_NAME + '.html')}  (and .md)")
    print(f"Dashboards:          {outputs.dashboards / 'index.html'}")
    print(f"Exports:             {outputs.exports}/  (.xlsx, .csv, .parquet)")
    print(f"Working state:       {state.warehouse_files(published).state_dir}/")
    # make dev shows the repo's instance only; another DAGSTER_HOME needs its own dagster dev
    print(f"Dagster run:         {run_id}  (instance {home}; {_ui_hint(home)}, then http://127.0.0.1:3000/runs/{run_id})")


QUALITY_SECTION_QUERY = """
    SELECT period_label, indicator, complete, target_op, target, value, n, met
    FROM kpi.quality_section ORDER BY period_start, period_end, indicator
"""


def _print_quality_section(rows) -> None:
    print(f"{'period':<10} {'indicator':<29} {'complete':<8} {'target':>7} {'value':>7} {'n':>7} {'met':<5}")
    for period, indicator, complete, op, target, value, n, met in rows:
        target_text = f"{op} {target:.1f}" if target is not None else "-"
        decimals = 2 if indicator.endswith("tyytyvaisyys") else 1
        value_text = f"{value:.{decimals}f}" if value is not None else "-"
        print(f"{period:<10} {indicator:<29} {str(complete).lower():<8} {target_text:>7} {value_text:>7} {n:>7} {'-' if met is None else str(met).lower():<5}")


def _print_new(new: dict[str, int]) -> None:
    files = "no new files" if not new["new_files"] else f"{new['new_files']} new file{'s' if new['new_files'] != 1 else ''}"
    print(
        f"\nThis run: {files}; rows read {new['rows_read']}, valid {new['rows_valid']}, rejected {new['rows_rejected']}."
    )


def _ui_hint(home: Path) -> str:
    return "make dev" if home == Path(os.path.abspath(REPO_ROOT)) else f"DAGSTER_HOME={home} dagster dev"


def _print_as_of_results(out: Path, published: Path, run_id: str, home: Path, new: dict[str, int]) -> None:
    con = duckdb.connect(str(out), read_only=True)
    try:
        rows = con.execute(QUALITY_SECTION_QUERY).fetchall()
        as_of, data_as_of, files_used, notes = con.execute("SELECT as_of, data_as_of, files_used, notes FROM meta.as_of_build").fetchall()[0]
    finally:
        con.close()
    print(f"\nkpi.quality_section as of {as_of.isoformat()} ({files_used} extracts dated on or before it, the newest {data_as_of.isoformat()})")
    _print_quality_section(rows)
    _print_new(new)
    for note in notes or []:
        print(f"note: {note}.")
    report = state.warehouse_files(out).outputs.report
    print(f"Figures as of:       {out}  (every kpi.* table; meta.as_of_build says what it is)")
    print(f"SQL on it:           keha-maksatus sql --warehouse {out}")
    print(f"Quality report:      {report / (REPORT_NAME + '.html')}  (and .md)")
    print(f"Published warehouse: {published}  (not touched)")
    print(f"Dagster run:         {run_id}  (instance {home}; {_ui_hint(home)}, then http://127.0.0.1:3000/runs/{run_id})")


# --- the command ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.debug:
        warnings.simplefilter("ignore")
        logging.getLogger("dagster").setLevel(logging.CRITICAL)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("error: interrupted; a run stopped mid-way leaves the published warehouse as it was, run again", file=sys.stderr)
        return 130
    except (OperatorError, MissingKeyError) as error:
        code = getattr(error, "exit_code", EXIT_CODES.get(type(error).__name__, 1))
        return _fail(one_line(error), code, args.debug)
    except Exception as error:  # noqa: BLE001 - anything else still ends in one line
        message = mask_string(one_line(f"{type(error).__name__}: {error}"))[:MAX_MESSAGE]
        return _fail(f"unexpected failure: {message}. Run again with --debug for the full trace", 1, args.debug)


def _fail(message: str, code: int, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    print(f"error: {message}", file=sys.stderr)
    return code


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
