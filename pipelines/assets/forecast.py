"""Forecast group: the year-end nowcast, the pending applications that decide it and the
what-if levers (keha_maksatus.forecast), with a WARN check on the running period."""

import dagster as dg

from keha_maksatus.config import INDICATORS, PROCESSING_TIME, SATISFACTION
from keha_maksatus.forecast import tables as forecast_tables
from pipelines.assets.kpi import KPI_TABLES, SHORT_NAMES, IndicatorCheck
from pipelines.metadata import markdown_table, table_metadata
from pipelines.resources import WarehouseResource

# Asset name -> warehouse table.
FORECAST_TABLES = {table.split(".")[1]: table for table in forecast_tables.TABLE_COMMENTS}
# Under this chance of meeting its target, the running period's check warns.
WARN_BELOW = 0.5


def probability_metadata(forecast) -> dict:
    """The chance of meeting each target, per running period, as numbers Dagster plots over runs."""
    metadata = {}
    for row in forecast.iter_rows(named=True):
        key = f"{SHORT_NAMES[row['indicator']]}_{row['period_label'].split('/')[0].replace('-', '_')}"
        if row["median"] is not None:
            metadata[f"{key}_median"] = dg.FloatMetadataValue(row["median"])
        if row["probability_meets_target"] is not None:
            metadata[f"{key}_probability_meets_target"] = dg.FloatMetadataValue(row["probability_meets_target"])
    return metadata


def _forecast_check(indicator: str) -> IndicatorCheck:
    return IndicatorCheck(
        indicator,
        asset="forecast",
        name=f"{SHORT_NAMES[indicator]}_on_track",
        description=(
            f"{INDICATORS[indicator]}: the running period's forecast meets its target with a chance of at least "
            f"{WARN_BELOW:.0%} (WARN below)."
        ),
        query="SELECT period_label, as_of, median, low_80, high_80, target_op, target, probability_meets_target "
              "FROM kpi.forecast WHERE indicator = ? ORDER BY period_end",
        judge=lambda _, rows: forecast_check_result(rows),
    )


def forecast_check_result(rows) -> dg.AssetCheckResult:
    """Judge the nearest running period (first row) by its chance of meeting the target."""
    if rows.is_empty():
        return dg.AssetCheckResult(passed=True, severity=dg.AssetCheckSeverity.WARN,
                                   description="No reporting period is running in the data: nothing to forecast.")
    row = rows.row(0, named=True)
    probability = row["probability_meets_target"]
    if row["median"] is None:
        return dg.AssetCheckResult(passed=True, severity=dg.AssetCheckSeverity.WARN,
                                   description=f"{row['period_label']}: no forecast (too little data to forecast from).")
    if probability is None:
        text = f"{row['period_label']}: forecast median {row['median']:.2f}; no target for the year."
    else:
        text = (f"{row['period_label']} (as of {row['as_of']}): forecast median {row['median']:.2f} "
                f"(80 % interval {row['low_80']:.2f}-{row['high_80']:.2f}), target {row['target_op']} {row['target']:g}: "
                f"chance of meeting it {probability:.0%}.")
    return dg.AssetCheckResult(
        passed=probability is None or probability >= WARN_BELOW,
        severity=dg.AssetCheckSeverity.WARN,
        description=text,
        metadata={"period": row["period_label"], "probability_meets_target": dg.FloatMetadataValue(probability),
                  "median": dg.FloatMetadataValue(row["median"]), "periods": markdown_table(rows)},
    )


FORECAST_CHECKS = [_forecast_check(SATISFACTION), _forecast_check(PROCESSING_TIME)]


@dg.multi_asset(
    specs=[
        dg.AssetSpec(name, description=forecast_tables.TABLE_COMMENTS[table], group_name="forecast", deps=list(KPI_TABLES))
        for name, table in FORECAST_TABLES.items()
    ],
    check_specs=[check.spec for check in FORECAST_CHECKS],
)
def forecast_tables_asset(warehouse: WarehouseResource):
    with warehouse.connect() as con:
        forecast_tables.build_forecast_tables(con, warehouse.settings())
        forecast = con.sql("SELECT * FROM kpi.forecast ORDER BY period_end, indicator").pl()
        for name, table in FORECAST_TABLES.items():
            metadata = table_metadata(con, table, preview_rows=20)
            if name == "forecast":
                metadata.update(probability_metadata(forecast))
            yield dg.MaterializeResult(asset_key=name, metadata=metadata)
        for check in FORECAST_CHECKS:
            yield check.evaluate(con)
