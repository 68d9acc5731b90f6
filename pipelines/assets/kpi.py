"""KPI group: the quality-section table and the analysts' breakdowns, in DuckDB."""


from dataclasses import dataclass
from typing import Callable

import dagster as dg
import polars as pl

from keha_maksatus import kpi
from keha_maksatus.config import INDICATORS, PROCESSING_TIME, SATISFACTION
from keha_maksatus.history.changes import QUARANTINED_PART, closed_period_changes
from keha_maksatus.history.publications import changes_since_last_publication
from keha_maksatus.outputs import finnish
from keha_maksatus.outputs.disclosure import history_for_people
from keha_maksatus.outputs.publish import check_data_volume
from pipelines.metadata import markdown_table, table_metadata
from pipelines.resources import WarehouseResource

# Asset name -> warehouse table, for every KPI table.
KPI_TABLES = {table.split(".")[1]: table for table in kpi.TABLE_COMMENTS}


CLOSED_PERIOD_CHECK = "closed_period_changed"
# The indicators in check names.
SHORT_NAMES = {SATISFACTION: "satisfaction", PROCESSING_TIME: "processing_time"}


@dataclass(frozen=True)
class IndicatorCheck:
    """A WARN check of one indicator, judged in the step that builds its asset (a step of
    its own would open the working file again): `query` (its one parameter the indicator)
    read from the working warehouse and judged by `judge(indicator, rows)`."""

    indicator: str
    asset: str
    name: str
    description: str
    query: str
    judge: Callable[[str, pl.DataFrame], dg.AssetCheckResult]

    @property
    def spec(self) -> dg.AssetCheckSpec:
        return dg.AssetCheckSpec(self.name, asset=self.asset, description=self.description)

    def evaluate(self, con) -> dg.AssetCheckResult:
        result = self.judge(self.indicator, con.sql(self.query, params=[self.indicator]).pl())
        return result._replace(asset_key=dg.AssetKey(self.asset), check_name=self.name)


def target_check_result(indicator: str, periods: pl.DataFrame) -> dg.AssetCheckResult:
    """Judge the newest period (first row of `periods`, newest first) against its target;
    report the closed periods in the metadata."""
    digits = REPORT_DECIMALS[indicator]
    if periods.is_empty():
        return dg.AssetCheckResult(passed=True, severity=dg.AssetCheckSeverity.WARN,
                                   description="No reporting period has data yet.")
    newest = periods.row(0, named=True)
    closed = periods.slice(1).with_columns(pl.col("value").round(digits))
    state = "running" if not newest["complete"] else "newest, complete"
    value = "no value" if newest["value"] is None else f"{newest['value']:.{digits}f}"
    if newest["met"] is None:
        verdict = "no target for this year" if newest["target"] is None else "no value to compare with the target"
    else:
        target = f"target {newest['target_op']} {newest['target']:.{digits}f}"
        verdict = f"{'meets' if newest['met'] else 'misses'} the {target}"
    missed = closed.filter(pl.col("met") == False)  # noqa: E712 (null = no target)
    history = f"; closed periods that missed their target: {', '.join(missed['period_label'])}" if missed.height else ""
    return dg.AssetCheckResult(
        passed=newest["met"] is not False,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{newest['period_label']} ({state}): {value} (n = {newest['n']}), {verdict}{history}.",
        metadata={
            "period": newest["period_label"],
            "period_complete": bool(newest["complete"]),
            "value": dg.FloatMetadataValue(_rounded(newest["value"], digits)),
            "target": dg.FloatMetadataValue(_rounded(newest["target"], digits)),
            "n": int(newest["n"] or 0),
            "closed_periods_missing_target": missed.height,
            "closed_periods": markdown_table(closed),
        },
    )


def _target_check(indicator: str) -> IndicatorCheck:
    return IndicatorCheck(
        indicator,
        asset="quality_section",
        name=f"{SHORT_NAMES[indicator]}_meets_target",
        description=(
            f"{INDICATORS[indicator]}: the newest reporting period (the running one) meets its target. "
            "Earlier, closed periods cannot change any more: they are listed in the metadata, not judged."
        ),
        query="SELECT period_label, complete, target_op, target, value, n, met FROM kpi.quality_section "
              "WHERE indicator = ? ORDER BY period_end DESC, period_start",
        judge=target_check_result,
    )


TARGET_CHECKS = [_target_check(SATISFACTION), _target_check(PROCESSING_TIME)]
ENOUGH_DATA_CHECK = "enough_data_to_publish"


@dg.multi_asset(
    specs=[dg.AssetSpec(name, description=kpi.TABLE_COMMENTS[table], group_name="kpi", deps=["decisions", "feedback"]) for name, table in KPI_TABLES.items()],
    check_specs=[
        # Judged on the changes the step computes once (explaining them reads the row history).
        dg.AssetCheckSpec(
            CLOSED_PERIOD_CHECK, asset="quality_section",
            description="No closed reporting period's value changed since the last publication; when one did, "
                        "the check names the extracts that moved it (the parts are in the quality_section materialization).",
        ),
        *[check.spec for check in TARGET_CHECKS],
        dg.AssetCheckSpec(
            ENOUGH_DATA_CHECK, asset="quality_section", blocking=True,
            description="Blocks publishing when the new figures rest on markedly less data than the published ones (default: under 90 %).",
        ),
    ],
)
def kpi_tables(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    settings = warehouse.settings()
    with warehouse.connect() as con:
        kpi.build_kpis(con, settings)
        # Against the published file's last publication, as record_publication compares.
        closed = shown_changes(closed_period_changes(changes_since_last_publication(con, warehouse.published_path)))
        for name, table in KPI_TABLES.items():
            metadata = table_metadata(con, table, preview_rows=40 if name == "quality_section" else 10)
            if name == "quality_section":
                metadata.update(_headline_metadata(con))
                metadata.update(closed_change_metadata(closed))
            yield dg.MaterializeResult(asset_key=name, metadata=metadata)
        yield closed_period_check_result(closed)
        for check in TARGET_CHECKS:
            yield check.evaluate(con)
        volume = check_data_volume(con, warehouse.published_path, settings.min_data_share, settings.publish_lock_wait_seconds)
    yield enough_data_result(volume)


# Decimals as the report shows them: mean score 2, days 1.
REPORT_DECIMALS = finnish.DECIMALS


def rounded_quality_section(reader) -> pl.DataFrame:
    """kpi.quality_section of an open warehouse, values rounded as the report shows them."""
    return reader.sql(
        "SELECT indicator, period_label, complete, target_op, target, "
        "round(value, CASE indicator WHEN ? THEN ? ELSE ? END) AS value, n, met "
        "FROM kpi.quality_section ORDER BY period_start, period_end, indicator",
        params=[SATISFACTION, REPORT_DECIMALS[SATISFACTION], REPORT_DECIMALS[PROCESSING_TIME]],
    ).pl()


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


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
        digits = REPORT_DECIMALS[row["indicator"]]
        metadata[f"{prefix}_latest_period"] = row["period_label"]
        metadata[prefix] = dg.FloatMetadataValue(_rounded(row["value"], digits))
        metadata[f"{prefix}_target"] = dg.FloatMetadataValue(_rounded(row["target"], digits))
        metadata[f"{prefix}_met"] = str(row["met"])
    return metadata


def shown_changes(closed: pl.DataFrame) -> pl.DataFrame:
    """The changes as the metadata may show them: disclosure's under-5 rule applied."""
    return history_for_people({"history.changes": closed})["history.changes"]


def explain_table(closed: pl.DataFrame) -> pl.DataFrame:
    """The parts of each closed period's change (in changes_between's order), as the metadata shows them."""
    return closed.select(
        pl.col("period_label").alias("period"), "indicator",
        pl.format("{} -> {}", _shown("value_from", "suppressed_from"), _shown("value_to", "suppressed_to")).alias("from -> to"),
        "part", pl.col("file_name").alias("file"), "items",
        pl.when(pl.col("contribution_suppressed")).then(pl.lit(WITHHELD))
        .otherwise(pl.col("contribution").round(4).cast(pl.String)).alias("contribution"),
    ) if closed.height else closed


WITHHELD = f"withheld (under {kpi.MIN_CELL_RESPONSES} responses)"


def _shown(column: str, suppressed: str) -> pl.Expr:
    """A value as the report rounds it (2 decimals for satisfaction, 1 for days), as text."""
    rounded = pl.when(pl.col("indicator") == SATISFACTION).then(pl.col(column).round(REPORT_DECIMALS[SATISFACTION])) \
        .otherwise(pl.col(column).round(REPORT_DECIMALS[PROCESSING_TIME]))
    return pl.when(pl.col(suppressed)).then(pl.lit(WITHHELD)).otherwise(rounded.cast(pl.String).fill_null("none"))


def moving_files(closed: pl.DataFrame) -> list[str]:
    """The extracts that moved the values: those of every part but rows newly quarantined
    (a rejected row leaves the earlier version standing)."""
    return sorted(set(closed.filter(pl.col("part") != QUARANTINED_PART)["file_name"].drop_nulls()))


def change_summary(closed: pl.DataFrame) -> str:
    """One line per changed closed period: from -> to and the files that moved it."""
    lines = []
    for (period, indicator), rows in closed.group_by("period_label", "indicator", maintain_order=True):
        shown = explain_table(rows.head(1))["from -> to"][0]
        lines.append(f"{period} {indicator}: {shown} (files: {', '.join(moving_files(rows)) or 'none'})")
    return "; ".join(lines)


def closed_change_metadata(closed: pl.DataFrame) -> dict:
    """The quality_section metadata of closed periods changed since the last publication:
    their count always, the explanation when there is one."""
    metadata: dict = {"closed_periods_changed": closed.select("indicator", "period_label").unique().height if closed.height else 0}
    if closed.height:
        metadata["closed_period_change"] = change_summary(closed)
        metadata["closed_period_change_parts"] = markdown_table(explain_table(closed), max_rows=100)
    return metadata


def closed_period_check_result(closed: pl.DataFrame) -> dg.AssetCheckResult:
    """WARN when a closed period's value changed since the last publication, naming the
    files that moved it."""
    if closed.is_empty():
        return dg.AssetCheckResult(asset_key="quality_section", check_name=CLOSED_PERIOD_CHECK, passed=True,
                                   severity=dg.AssetCheckSeverity.WARN,
                                   description="No closed period changed since the last publication.")
    return dg.AssetCheckResult(
        asset_key="quality_section", check_name=CLOSED_PERIOD_CHECK, passed=False, severity=dg.AssetCheckSeverity.WARN,
        description=f"Closed periods changed since the last publication: {change_summary(closed)}.",
        metadata={"files": ", ".join(moving_files(closed)), "parts": markdown_table(explain_table(closed), max_rows=100)},
    )


def enough_data_result(volume) -> dg.AssetCheckResult:
    """The blocking check: the new figures rest on enough data compared with the published ones."""
    metadata = {f"new_{k}": v for k, v in volume.new_counts.items()}
    metadata.update({f"published_{k}": v for k, v in (volume.published_counts or {}).items()})
    metadata["message"] = volume.message
    return dg.AssetCheckResult(asset_key="quality_section", check_name=ENOUGH_DATA_CHECK, passed=volume.passed,
                               severity=dg.AssetCheckSeverity.ERROR, metadata=metadata, description=volume.message)
