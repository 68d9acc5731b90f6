"""Publish group: the analysts' DuckDB file, replaced atomically."""


import dagster as dg
import duckdb

from keha_maksatus.config import PROCESSING_TIME, SATISFACTION
from keha_maksatus.outputs.publish import PUBLISHED_TABLES, publish
from pipelines.assets.forecast import FORECAST_TABLES
from pipelines.assets.kpi import KPI_TABLES, REPORT_DECIMALS
from pipelines.metadata import markdown_table
from pipelines.resources import WarehouseResource


@dg.asset(
    group_name="publish",
    deps=[*KPI_TABLES, *FORECAST_TABLES],
    description="The published warehouse analysts open read-only: KPI tables, current state, quarantine and ingest log.",
)
def published_warehouse(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    with warehouse.connect() as con:
        path = publish(con, warehouse.working_file, warehouse.published_path, run_id=context.run_id,
                       lock_wait_seconds=warehouse.settings().publish_lock_wait_seconds)
    reader = duckdb.connect(str(path), read_only=True)
    try:
        counts = {t: reader.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in PUBLISHED_TABLES}
        quality = reader.sql(
            "SELECT indicator, period_label, complete, target_op, target, "
            "round(value, CASE indicator WHEN ? THEN ? ELSE ? END) AS value, n, met "
            "FROM kpi.quality_section ORDER BY period_start, period_end, indicator",
            params=[SATISFACTION, REPORT_DECIMALS[SATISFACTION], REPORT_DECIMALS[PROCESSING_TIME]],
        ).pl()
    finally:
        reader.close()
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "tables": markdown_table(_counts_frame(counts), max_rows=50),
            "quality_section": markdown_table(quality, max_rows=50),
            "dagster/row_count": counts["kpi.quality_section"],
        }
    )


def _counts_frame(counts: dict[str, int]):
    import polars as pl

    return pl.DataFrame({"table": list(counts), "rows": list(counts.values())})
