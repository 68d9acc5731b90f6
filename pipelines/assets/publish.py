"""Publish group: the analysts' DuckDB file, replaced atomically."""


import dagster as dg
import duckdb

from keha_maksatus.config import PROCESSING_TIME, SATISFACTION
from keha_maksatus.outputs.publish import PUBLISHED_TABLES, publish
from pipelines.assets.forecast import FORECAST_TABLES
from pipelines.assets.kpi import KPI_TABLES, REPORT_DECIMALS, rounded_quality_section
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
        quality = rounded_quality_section(reader)
        history = publication_metadata(reader)
    finally:
        reader.close()
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "tables": markdown_table(_counts_frame(counts), max_rows=50),
            "quality_section": markdown_table(quality, max_rows=50),
            "dagster/row_count": counts["kpi.quality_section"],
            **history,
        }
    )


# Short stable names of the indicators in metadata keys (q_1_6_2022_kasittelyaika).
INDICATOR_KEYS = {PROCESSING_TIME: "kasittelyaika", SATISFACTION: "tyytyvaisyys"}


def quality_key(indicator: str, period_label: str) -> str:
    """The metadata key of one quality-section value: q_<period>_<indicator>."""
    period = period_label.replace("-", "_").replace("/", "_")
    return f"q_{period}_{INDICATOR_KEYS.get(indicator, indicator)}"


def publication_metadata(reader: duckdb.DuckDBPyConnection) -> dict:
    """The newest publication's number and each value of its quality section (rounded as the
    report rounds them) as numbers, so that Dagster plots them over runs."""
    rows = reader.execute(
        "SELECT indicator, period_label, value FROM history.quality_section "
        "WHERE publication_no = (SELECT max(publication_no) FROM history.publication) ORDER BY period_start, period_end, indicator"
    ).fetchall()
    number = reader.execute("SELECT max(publication_no) FROM history.publication").fetchall()[0][0]
    metadata: dict = {"publication_no": dg.MetadataValue.int(number)}
    for indicator, period_label, value in rows:
        digits = REPORT_DECIMALS.get(indicator, 2)
        metadata[quality_key(indicator, period_label)] = dg.MetadataValue.float(None if value is None else round(value, digits))
    return metadata


def _counts_frame(counts: dict[str, int]):
    import polars as pl

    return pl.DataFrame({"table": list(counts), "rows": list(counts.values())})
