"""Ingest and validate groups: a step per new export file (so that an executor can spread
the files over workers: there it reads, validates, masks and pseudonymises the file), and
one writer step that merges them into the current state. In one process the writer
prepares each file itself, the next one while it stores the current one."""

import re

import dagster as dg
import polars as pl

from keha_maksatus.ingest import staging
from keha_maksatus.ingest.store import (
    DUPLICATE, INGESTED, SKIPPED, FileTask, one_ahead, plan_landing, prepare_task, store_prepared,
)
from keha_maksatus.warehouse import next_file_id
from pipelines.metadata import markdown_table, table_metadata
from pipelines.resources import WarehouseResource

FILE_CHECK = "no_file_quarantined_whole"
CURRENT_STATE = {
    "decisions": "Payment applications in their latest valid state (core.decisions): a later extract replaces an earlier row.",
    "feedback": "Survey responses in their latest valid state (core.feedback).",
}
CHECK_SPEC = dg.AssetCheckSpec(FILE_CHECK, asset="ingested_files", description="No file of this run was unreadable or quarantined whole.")
GROUPS = {"ingested_files": "ingest", **{kind: "validate" for kind in CURRENT_STATE}}
ASSET_OUTS = {
    "ingested_files": dg.AssetOut(
        dagster_type=dg.Nothing,
        description="Every export file of the landing folder not ingested before: read, validated (pandera), rejections quarantined, logged.",
    ),
    **{
        kind: dg.AssetOut(dagster_type=dg.Nothing, description=text)
        for kind, text in CURRENT_STATE.items()
    },
}


IN_PROCESS_NOTE = (
    "one process: read, validated and stored by merge_landing_files, each file while the one before is stored "
    "(its outcome and the rules it broke are in the ingested_files materialization); on workers this step does the work"
)


def mapping_key(task: FileTask) -> str:
    """A step name part for the file: its logged (masked) name made safe, and its place."""
    return f"{re.sub(r'[^A-Za-z0-9_]', '_', task.item.logged_name)[:60]}_{task.index}"


@dg.op(out={"files": dg.DynamicOut(FileTask), "settled": dg.Out(list)})
def list_landing_files(context: dg.OpExecutionContext, warehouse: WarehouseResource):
    """What the working state knows of each landing entry; one step to prepare for each
    entry that needs hashing or reading, the others (known content, links, folders) settled here."""
    key, is_demo = warehouse.pseudonym_key()  # checked against the working state's key
    if is_demo:
        context.log.warning("KEHA_PSEUDONYM_KEY is not set: the demo key serves only the bundled sample data.")
    with warehouse.connect() as con:
        tasks = plan_landing(con, warehouse.landing_dir, key)
    settled = [staging.StagedFile(task.index, prepare_task(task, key)) for task in tasks if task.settled]
    for task in tasks:
        if not task.settled:
            yield dg.DynamicOutput(task, mapping_key=mapping_key(task), output_name="files")
    yield dg.Output(settled, output_name="settled", metadata={"entries": len(tasks), "to_prepare": len(tasks) - len(settled)})


@dg.op(out=dg.Out(dg.Any))
def prepare_landing_file(context: dg.OpExecutionContext, warehouse: WarehouseResource, task: FileTask) -> dg.Output:
    """On workers: hash, read, parse, validate, mask and pseudonymise one file; its rows wait
    in the run's staging folder for the merge. The working file is never opened here.
    In one process the merge prepares the file instead, each while it stores the one
    before (a step here could not overlap with the merge): the task is handed on."""
    if not warehouse.on_workers:
        return dg.Output(task, metadata={"file": task.item.logged_name, "note": IN_PROCESS_NOTE})
    key, _ = warehouse.prepare_key()
    prepared = prepare_task(task, key)
    metadata = {"file": task.item.logged_name}
    if prepared.error:
        metadata["error"] = prepared.error
    if prepared.result is not None:
        rules = (
            prepared.result.rejections.group_by("column", "rule")
            .agg(pl.col("line").n_unique().alias("rows"))
            .sort("rows", "column", "rule", descending=[True, False, False])
        )
        metadata.update(
            kind=prepared.kind.name, rows_read=prepared.result.rows_read, rows_valid=prepared.result.rows_valid,
            rows_rejected=prepared.result.rows_rejected, rules_hit=markdown_table(rules),
        )
    elif not prepared.error:
        metadata["note"] = "content already ingested or logged: nothing to read"
    staged = staging.stage(prepared, task.index, warehouse.files.staging_dir(context.run_id))
    return dg.Output(staged, metadata=metadata)


@dg.op(out={name: dg.Out(dg.Nothing) for name in [*ASSET_OUTS, CHECK_SPEC.get_python_identifier()]})
def merge_landing_files(context: dg.OpExecutionContext, warehouse: WarehouseResource, settled: list, prepared: list):
    """Store every entry in file-name order into the working state (the one writer), then
    remove the staged files. An entry not prepared by its step (one process) is prepared
    here, the next one in a background thread while the current one is stored."""
    key, _ = warehouse.pseudonym_key()
    files = sorted([*settled, *prepared], key=lambda entry: entry.index)

    def ready(entry):
        return prepare_task(entry, key) if isinstance(entry, FileTask) else staging.load(entry)

    with warehouse.connect() as con:
        first_new_file = next_file_id(con)
        outcomes = store_prepared(con, one_ahead(ready, files), warehouse.settings())
        rules = con.sql(
            """
            SELECT l.file_name AS file, q.column_name, q.rule, count(DISTINCT q.line) AS rows
            FROM quality.quarantine q JOIN quality.ingest_log l USING (file_id)
            WHERE l.file_id >= ? GROUP BY ALL ORDER BY file, rows DESC, column_name, rule
            """,
            params=[first_new_file],
        ).pl()
        totals = con.execute(
            "SELECT count(*), sum(rows_read), sum(rows_valid), sum(rows_rejected) FROM quality.ingest_log"
        ).fetchall()[0]
        current = {kind: table_metadata(con, f"core.{kind}") for kind in CURRENT_STATE}
        in_quarantine = dict(
            con.execute(
                "SELECT l.kind, count(DISTINCT (q.file_id, q.line)) FROM quality.quarantine q JOIN quality.ingest_log l USING (file_id) GROUP BY 1"
            ).fetchall()
        )
    staging.remove(warehouse.files.staging_dir(context.run_id))
    table = pl.DataFrame(
        [
            {"file": o.file_name, "status": o.status, "read": o.rows_read, "valid": o.rows_valid,
             "rejected": o.rows_rejected, "reason": o.reason or ""}
            for o in outcomes
        ],
        schema={"file": pl.String, "status": pl.String, "read": pl.Int64, "valid": pl.Int64, "rejected": pl.Int64, "reason": pl.String},
    )
    # A link or folder in the landing folder is no export: logged and warned of, not held back.
    held_back = [o for o in outcomes if o.status not in (INGESTED, DUPLICATE, SKIPPED)]
    for outcome in held_back:
        context.log.error(f"{outcome.file_name}: {outcome.status}: {outcome.reason}")
    for outcome in outcomes:
        if outcome.status == SKIPPED:
            context.log.warning(f"{outcome.file_name}: skipped: {outcome.reason}")
    yield dg.Output(
        None,
        output_name="ingested_files",
        metadata={
            "new_files": len(outcomes),
            "rows_read": int(table["read"].sum()),
            "rows_valid": int(table["valid"].sum()),
            "rows_rejected": int(table["rejected"].sum()),
            "files_in_log": totals[0],
            "rows_read_all_time": int(totals[1] or 0),
            "rows_rejected_all_time": int(totals[3] or 0),
            "files_this_run": markdown_table(table),
            "rules_hit_this_run": markdown_table(rules, max_rows=100),
        },
    )
    yield dg.AssetCheckResult(
        asset_key="ingested_files",
        check_name=FILE_CHECK,
        passed=not held_back,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "files_held_back": len(held_back),
            "details": dg.MetadataValue.md(
                "\n".join(f"- `{o.file_name}`: {o.status}: {o.reason}" for o in held_back) or "none"
            ),
        },
    )
    for kind, metadata in current.items():
        yield dg.Output(None, output_name=kind, metadata={**metadata, "rows_in_quarantine_all_time": in_quarantine.get(kind, 0)})


def _ingest_graph():
    files, settled = list_landing_files()
    merged = merge_landing_files(settled, files.map(prepare_landing_file).collect())
    return {name: getattr(merged, name) for name in [*ASSET_OUTS, CHECK_SPEC.get_python_identifier()]}


# A graph-backed asset takes one group name: each asset gets its own afterwards.
ingest_landing_folder = dg.graph_multi_asset(name="ingest_landing_folder", outs=ASSET_OUTS, check_specs=[CHECK_SPEC])(
    _ingest_graph
).map_asset_specs(lambda spec: spec.replace_attributes(group_name=GROUPS[spec.key.to_user_string()]))
