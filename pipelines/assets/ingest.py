"""Ingest group: every new export file into the working warehouse."""


import dagster as dg
import polars as pl

from keha_maksatus.ingest import INGESTED, ingest_landing
from keha_maksatus.privacy import resolve_key
from pipelines.metadata import markdown_table
from pipelines.resources import WarehouseResource

FILE_CHECK = "no_file_quarantined_whole"


@dg.asset(
    group_name="ingest",
    description="Reads, validates (pandera), pseudonymises and stores every export file of the landing folder not ingested before.",
    check_specs=[dg.AssetCheckSpec(FILE_CHECK, asset="ingested_files", description="No file of this run was unreadable or quarantined whole.")],
)
def ingested_files(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    key, is_demo = resolve_key(warehouse.landing_dir)
    if is_demo:
        context.log.warning("KEHA_PSEUDONYM_KEY is not set: the demo key serves only the bundled sample data.")
    with warehouse.connect() as con:
        outcomes = ingest_landing(con, warehouse.landing_dir, key, warehouse.settings())
        totals = con.execute(
            "SELECT count(*), sum(rows_read), sum(rows_valid), sum(rows_rejected) FROM state.ingest.log"
        ).fetchall()[0]
    table = pl.DataFrame(
        [
            {"file": o.file_name, "status": o.status, "read": o.rows_read, "valid": o.rows_valid,
             "rejected": o.rows_rejected, "reason": o.reason or ""}
            for o in outcomes
        ],
        schema={"file": pl.String, "status": pl.String, "read": pl.Int64, "valid": pl.Int64, "rejected": pl.Int64, "reason": pl.String},
    )
    held_back = [o for o in outcomes if o.status != INGESTED and o.status != "duplicate_content"]
    for outcome in held_back:
        context.log.error(f"{outcome.file_name}: {outcome.status}: {outcome.reason}")
    check = dg.AssetCheckResult(
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
    return dg.MaterializeResult(
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
        check_results=[check],
    )

