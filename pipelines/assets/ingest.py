"""Ingest and validate groups: every new export file read, validated (pandera),
pseudonymised and merged into the current state, in one step."""


import dagster as dg
import polars as pl

from keha_maksatus.ingest.store import DUPLICATE, INGESTED, SKIPPED, ingest_landing
from pipelines.metadata import markdown_table, table_metadata
from pipelines.resources import WarehouseResource

FILE_CHECK = "no_file_quarantined_whole"
CURRENT_STATE = {
    "decisions": "Payment applications in their latest valid state (core.decisions): a later extract replaces an earlier row.",
    "feedback": "Survey responses in their latest valid state (core.feedback).",
}


@dg.multi_asset(
    name="ingest_landing_folder",
    specs=[
        dg.AssetSpec(
            "ingested_files", group_name="ingest",
            description="Every export file of the landing folder not ingested before: read, validated (pandera), rejections quarantined, logged.",
        ),
        *[dg.AssetSpec(kind, group_name="validate", deps=["ingested_files"], description=text) for kind, text in CURRENT_STATE.items()],
    ],
    check_specs=[dg.AssetCheckSpec(FILE_CHECK, asset="ingested_files", description="No file of this run was unreadable or quarantined whole.")],
)
def ingest_landing_folder(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    key, is_demo = warehouse.pseudonym_key()  # checked against the working state's key
    if is_demo:
        context.log.warning("KEHA_PSEUDONYM_KEY is not set: the demo key serves only the bundled sample data.")
    with warehouse.connect() as con:
        outcomes = ingest_landing(con, warehouse.landing_dir, key, warehouse.settings())
        totals = con.execute(
            "SELECT count(*), sum(rows_read), sum(rows_valid), sum(rows_rejected) FROM quality.ingest_log"
        ).fetchall()[0]
        current = {kind: table_metadata(con, f"core.{kind}") for kind in CURRENT_STATE}
        in_quarantine = dict(
            con.execute(
                "SELECT l.kind, count(DISTINCT (q.file_id, q.line)) FROM quality.quarantine q JOIN quality.ingest_log l USING (file_id) GROUP BY 1"
            ).fetchall()
        )
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
    yield dg.MaterializeResult(
        asset_key="ingested_files",
        metadata={
            "new_files": len(outcomes),
            "rows_read": int(table["read"].sum()),
            "rows_valid": int(table["valid"].sum()),
            "rows_rejected": int(table["rejected"].sum()),
            "files_in_log": totals[0],
            "rows_read_all_time": int(totals[1] or 0),
            "rows_rejected_all_time": int(totals[3] or 0),
            "files_this_run": markdown_table(table),
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
        yield dg.MaterializeResult(asset_key=kind, metadata={**metadata, "rows_in_quarantine_all_time": in_quarantine.get(kind, 0)})
