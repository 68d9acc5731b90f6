"""KPI group: the quality-section table and the analysts' breakdowns, in DuckDB."""


import dagster as dg

from keha_maksatus import kpi
from keha_maksatus.config import INDICATORS, PROCESSING_TIME, SATISFACTION
from keha_maksatus.outputs.publish import check_data_volume
from pipelines.metadata import markdown_table, table_metadata
from pipelines.resources import WarehouseResource

# Asset name -> warehouse table, for every KPI table.
KPI_TABLES = {table.split(".")[1]: table for table in kpi.TABLE_COMMENTS}


@dg.multi_asset(
    specs=[dg.AssetSpec(name, description=kpi.TABLE_COMMENTS[table], group_name="kpi", deps=["decisions", "feedback"]) for name, table in KPI_TABLES.items()],
)
def kpi_tables(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    with warehouse.connect() as con:
        kpi.build_kpis(con, warehouse.settings())
        for name, table in KPI_TABLES.items():
            metadata = table_metadata(con, table, preview_rows=40 if name == "quality_section" else 10)
            if name == "quality_section":
                metadata.update(_headline_metadata(con))
            yield dg.MaterializeResult(asset_key=name, metadata=metadata)


def _headline_metadata(con) -> dict:
    """The latest period's value of each indicator, as numbers Dagster can plot."""
    latest = con.sql(
        """
        SELECT indicator, period_label, value, n, target, met FROM kpi.quality_section
        QUALIFY row_number() OVER (PARTITION BY indicator ORDER BY period_end DESC, period_start) = 1
        """
    ).pl()
    metadata = {}
    for row in latest.iter_rows(named=True):
        prefix = "satisfaction" if row["indicator"] == SATISFACTION else "processing_time_days"
        metadata[f"{prefix}_latest_period"] = row["period_label"]
        metadata[prefix] = dg.FloatMetadataValue(row["value"])
        metadata[f"{prefix}_target"] = dg.FloatMetadataValue(row["target"])
        metadata[f"{prefix}_met"] = str(row["met"])
    return metadata


def _target_check(indicator: str):
    @dg.asset_check(
        asset="quality_section",
        name=f"{'satisfaction' if indicator == SATISFACTION else 'processing_time'}_meets_target",
        description=f"{INDICATORS[indicator]}: every period with a target meets it.",
    )
    def _check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with warehouse.connect() as con:
            missed = con.sql(
                "SELECT period_label, complete, value, n, target_op, target FROM kpi.quality_section "
                "WHERE indicator = ? AND met = false ORDER BY period_end",
                params=[indicator],
            ).pl()
        return dg.AssetCheckResult(
            passed=missed.is_empty(), severity=dg.AssetCheckSeverity.WARN,
            metadata={"periods_missing_target": missed.height, "periods": markdown_table(missed)},
        )

    return _check


satisfaction_meets_target = _target_check(SATISFACTION)
processing_time_meets_target = _target_check(PROCESSING_TIME)


@dg.asset_check(
    asset="quality_section",
    blocking=True,
    description="Blocks publishing when the new figures rest on markedly less data than the published ones (default: under 90 %).",
)
def enough_data_to_publish(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    settings = warehouse.settings()
    with warehouse.connect() as con:
        volume = check_data_volume(con, warehouse.published_path, settings.min_data_share, settings.publish_lock_wait_seconds)
    metadata = {f"new_{k}": v for k, v in volume.new_counts.items()}
    metadata.update({f"published_{k}": v for k, v in (volume.published_counts or {}).items()})
    metadata["message"] = volume.message
    return dg.AssetCheckResult(passed=volume.passed, severity=dg.AssetCheckSeverity.ERROR, metadata=metadata, description=volume.message)
