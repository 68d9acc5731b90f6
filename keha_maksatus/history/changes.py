"""Why a figure changed: the change of a quality-section value between two sets of
ingested files, broken into parts that sum exactly to it.

With m0 the mean over the from-state, n1 the count of the to-state, an item (application
or response) counted only in the to-state adds (d1 - m0) / n1, one counted in both adds
(d1 - d0) / n1 and one counted only in the from-state adds -(d0 - m0) / n1; together
m1 - m0. Only ids with a version brought by a file in one set but not the other can
differ, so the items are read for those ids alone (history.decisions / history.feedback,
versions.state_sql); the states' totals come from the current state (core.*) when one
side is it, the other side's by the items' difference. Rows newly rejected (quality.quarantine) change no
figure (the earlier version of a rejected row stands): they are told once per comparison
and kind, with no period.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Iterable

import duckdb
import polars as pl

from keha_maksatus import kpi
from keha_maksatus.config import PROCESSING_TIME, SATISFACTION
from keha_maksatus.errors import ConfigurationError
from keha_maksatus.history import versions

# Each part's name as the report shows it.
PART_LABELS_FI = {
    "new_applications": "Uudet hakemukset",
    "new_responses": "Uudet vastaukset",
    "decided_since": "Odottaneet hakemukset päätetty",
    "dates_into_period": "Päivämäärä korjattu kaudelle",
    "dates_out_of_period": "Päivämäärä korjattu kauden ulkopuolelle",
    "days_corrected": "Käsittelyaika korjattu",
    "score_corrected": "Arvosana korjattu",
    "decision_reverted": "Päätös palautunut käsittelyyn",
    "classification_changed": "Arvosana, kysely tai palvelu muuttunut",
    "no_longer_in_data": "Ei enää aineistossa",
    "newly_quarantined": "Uudet hylätyt rivit (karanteeni)",
}
PART_ORDER = {part: i for i, part in enumerate(PART_LABELS_FI)}
COLUMNS = {
    "indicator": pl.String, "period_label": pl.String, "complete": pl.Boolean,
    "value_from": pl.Float64, "value_to": pl.Float64, "n_from": pl.Int64, "n_to": pl.Int64,
    "part": pl.String, "file_id": pl.Int32, "file_name": pl.String, "items": pl.Int64, "contribution": pl.Float64,
}
ITEM_COLUMNS = {
    "indicator": pl.String, "period_label": pl.String, "item_id": pl.String, "part": pl.String,
    "file_id": pl.Int32, "file_name": pl.String, "value_from": pl.Float64, "value_to": pl.Float64, "contribution": pl.Float64,
}
CHANGE_TOLERANCE = 1e-9  # a mean recomputed over the same rows may differ in its last bits


@dataclass(frozen=True)
class Indicator:
    """The rows one indicator counts (kpi.MEAN_ROWS) and what its parts are called."""

    rows: kpi.MeanRows
    new_part: str
    since_part: str  # in the mean now, not before, though present with a date in the period
    reversed_part: str  # in the mean before, present now but no longer counted
    corrected_part: str


INDICATORS = {
    PROCESSING_TIME: Indicator(kpi.MEAN_ROWS[PROCESSING_TIME], "new_applications", "decided_since", "decision_reverted", "days_corrected"),
    SATISFACTION: Indicator(
        kpi.MEAN_ROWS[SATISFACTION], "new_responses", "classification_changed", "classification_changed", "score_corrected",
    ),
}
QUARANTINED_PART = "newly_quarantined"
_PERIOD = re.compile(r"^\s*1-(6|12)/(\d{4})\s*$")


def parse_period(label: str) -> tuple[str, dt.date, dt.date]:
    """(label, start, end) of a reporting period label 1-6/Y or 1-12/Y (kpi.period_bounds)."""
    match = _PERIOD.match(label)
    if not match or not 1900 <= int(match.group(2)) <= 9999:
        raise ConfigurationError(f"unknown reporting period {label!r}: a period is 1-6/YYYY or 1-12/YYYY; give e.g. 1-6/2022")
    wanted = f"1-{match.group(1)}/{match.group(2)}"
    return next(p for p in kpi.period_bounds(int(match.group(2))) if p[0] == wanted)


def empty_changes() -> pl.DataFrame:
    return pl.DataFrame(schema=COLUMNS)


def changes_between(
    con: duckdb.DuckDBPyConnection, from_files: Iterable[int], to_files: Iterable[int], periods: Iterable[str] | None = None,
) -> pl.DataFrame:
    """The change of every quality-section value from the state of `from_files` to that
    of `to_files` (ingested file ids), by part and by the extract that brought it: one row
    per (indicator, period, part, file) with the items and their contribution. Periods
    with no item changed are left out; `periods` (labels) narrows them. A contribution is
    null where a mean is undefined on either side (n = 0): no decomposition then. Rows
    the to-set's new files rejected are one row per file and kind (part newly_quarantined,
    no period, contribution 0)."""
    frames = [rows for _, _, rows in _compare(con, from_files, to_files, periods, detail=False)]
    return _sorted(pl.concat(frames, how="vertical_relaxed") if frames else empty_changes())


def explain_between(
    con: duckdb.DuckDBPyConnection, from_files: Iterable[int], to_files: Iterable[int], periods: Iterable[str] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """changes_between and, from the same comparison, each item's part: per application
    (hakemus_id) or response (vastaus_id), the extract that brought the change, its value
    in the mean before and after (null when not in it) and its contribution; the largest
    movers first."""
    found = _compare(con, from_files, to_files, periods, detail=True)
    parts = [rows for _, _, rows in found]
    items = [rows for _, rows, _ in found]
    return (_sorted(pl.concat(parts, how="vertical_relaxed") if parts else empty_changes()),
            _by_contribution(pl.concat(items, how="vertical_relaxed") if items else pl.DataFrame(schema=ITEM_COLUMNS)))


def changes_since(con: duckdb.DuckDBPyConnection, files: Iterable[int] | None) -> pl.DataFrame:
    """changes_between `files` and every file ingested now; empty when `files` is None or
    lies before the row history began (no earlier state known: not known is not nothing)."""
    if files is None or not versions.history_known(con, list(files)):
        return empty_changes()
    return changes_between(con, files, versions.ingested_files(con))


def closed_period_changes(changes: pl.DataFrame) -> pl.DataFrame:
    """The rows of closed (complete) periods whose value changed."""
    return changes.filter(pl.col("complete").fill_null(False) & value_changed())


def value_changed() -> pl.Expr:
    """The value moved (beyond the last bits), or it came to be or ceased to be defined."""
    before, after = pl.col("value_from"), pl.col("value_to")
    return pl.when(before.is_null() | after.is_null()).then(before.is_null() != after.is_null()) \
        .otherwise((after - before).abs() > CHANGE_TOLERANCE)


def figure_changed() -> pl.Expr:
    """The value or its n changed (the periods history.changes keeps)."""
    return value_changed() | (pl.col("n_from") != pl.col("n_to")).fill_null(False)


def kept() -> pl.Expr:
    """The rows history.changes keeps: the periods whose figure changed, and the rows newly rejected."""
    return figure_changed() | (pl.col("part") == QUARANTINED_PART)


# --- the comparison ------------------------------------------------------------------------


def _compare(con, from_files, to_files, periods, detail: bool):
    """(indicator, item rows or None, part rows) for each indicator with changes."""
    before, after = sorted(set(from_files)), sorted(set(to_files))
    wanted = [parse_period(p) for p in periods] if periods is not None else None
    if before == after:
        return []
    frames = {
        "chg_from_files": pl.DataFrame({"file_id": before}, schema={"file_id": pl.Int32}),
        "chg_to_files": pl.DataFrame({"file_id": after}, schema={"file_id": pl.Int32}),
        "chg_diff_files": pl.DataFrame({"file_id": sorted(set(before) ^ set(after))}, schema={"file_id": pl.Int32}),
        "chg_new_files": pl.DataFrame({"file_id": sorted(set(after) - set(before))}, schema={"file_id": pl.Int32}),
    }
    ingested = set(versions.ingested_files(con))
    # The state whose totals are summed from its rows: the current one (core.*) when either
    # side is it, else the to-state; the other side's follow from the items.
    base = ("to", True) if set(after) == ingested else ("from", True) if set(before) == ingested else ("to", False)
    results = []
    for name, frame in frames.items():
        con.register(name, frame)
    try:
        for indicator, spec in INDICATORS.items():
            found = _compare_indicator(con, indicator, spec, wanted, base, detail=detail)
            rejected = _quarantined(con, indicator, spec)
            if found is None and rejected.is_empty():
                continue
            items, rows = found if found is not None else (pl.DataFrame(schema=ITEM_COLUMNS) if detail else None, empty_changes())
            results.append((indicator, items, pl.concat([rows, rejected], how="vertical_relaxed")))
    finally:
        for name in frames:
            con.unregister(name)
    return results


def _compare_indicator(con, indicator: str, spec: Indicator, wanted, base: tuple[str, bool], detail: bool):
    kind, id_column = spec.rows.kind, versions.ID_COLUMNS[spec.rows.kind]
    items = con.sql(_items_sql(spec, id_column)).pl()
    if items.is_empty():
        return None
    months = items.select(pl.concat_list("month0", "month1").explode().drop_nulls().dt.year().unique().sort()).to_series()
    bounds = [p for year in months for p in kpi.period_bounds(year)]
    if wanted is not None:
        bounds = [p for p in bounds if p in wanted]
    if not bounds:
        return None
    con.register("chg_periods", pl.DataFrame(bounds, schema={"period_label": pl.String, "period_start": pl.Date,
                                                              "period_end": pl.Date}, orient="row"))
    con.register("chg_items", items)
    try:
        classified = con.sql(_classified_sql(spec)).pl()
        if classified.is_empty():
            return None
        totals = con.sql(_totals_sql(spec, *base)).pl()
        newest = con.execute(
            "SELECT max(extract_date) FROM quality.ingest_log WHERE kind = ? AND file_id IN (SELECT file_id FROM chg_to_files)",
            [kind],
        ).fetchall()[0][0]
    finally:
        con.unregister("chg_items")
        con.unregister("chg_periods")
    totals = totals.with_columns(
        pl.when(pl.col("n_from") > 0).then(pl.col("s_from") / pl.col("n_from")).alias("value_from"),
        pl.when(pl.col("n_to") > 0).then(pl.col("s_to") / pl.col("n_to")).alias("value_to"),
        (pl.col("period_end") <= newest if newest is not None else pl.lit(False)).alias("complete"),
        pl.lit(indicator).alias("indicator"),
    )
    classified = classified.join(totals.select("period_label", "n_from", "n_to", "value_from"), on="period_label")
    # Each item's share of the change: what it adds to the to-sum, less what it took from
    # the from-sum, less the from-mean for each place it adds to the count, over n1.
    defined = (pl.col("n_from") > 0) & (pl.col("n_to") > 0)
    classified = classified.with_columns(
        pl.when(defined).then(
            (pl.col("v_in1") - pl.col("v_in0") - (pl.col("k_in1") - pl.col("k_in0")) * pl.col("value_from")) / pl.col("n_to")
        ).alias("contribution")
    )
    parts = (
        classified.group_by("period_label", "part", "file_id", "file_name")
        .agg(pl.len().cast(pl.Int64).alias("items"),
             # Sums of whole days or scores first, the mean once: exact up to the last bits.
             pl.when(pl.col("contribution").is_null().any()).then(None).otherwise(
                 (pl.col("v_in1").sum() - pl.col("v_in0").sum()
                  - (pl.col("k_in1").sum() - pl.col("k_in0").sum()) * pl.col("value_from").first()) / pl.col("n_to").first()
             ).alias("contribution"))
    )
    rows = parts.join(totals, on="period_label").select(list(COLUMNS)).cast(COLUMNS)
    item_rows = None
    if detail:
        item_rows = classified.with_columns(pl.lit(indicator).alias("indicator")).select(
            "indicator", "period_label", "item_id", "part", "file_id", "file_name",
            pl.when(pl.col("k_in0") == 1).then(pl.col("v0")).alias("value_from"),
            pl.when(pl.col("k_in1") == 1).then(pl.col("v1")).alias("value_to"),
            "contribution",
        ).cast(ITEM_COLUMNS)
    return item_rows, rows


def _quarantined(con, indicator: str, spec: Indicator) -> pl.DataFrame:
    """The rows of the kind rejected by the files of the to-set only, once per file with
    no period (a rejected row's period is not known): part newly_quarantined, contribution
    0 (the earlier version of the row stands, or none)."""
    found = con.sql(
        """
        SELECT q.file_id, l.file_name, count(DISTINCT q.line) AS items
        FROM quality.quarantine q JOIN quality.ingest_log l USING (file_id)
        WHERE l.kind = ? AND q.file_id IN (SELECT file_id FROM chg_new_files) GROUP BY ALL
        """,
        params=[spec.rows.kind],
    ).pl()
    return found.with_columns(
        pl.lit(indicator).alias("indicator"), pl.lit(QUARANTINED_PART).alias("part"), pl.lit(0.0).alias("contribution"),
    ).select(*[pl.col(c) if c in found.columns or c in ("indicator", "part", "contribution") else pl.lit(None).alias(c)
               for c in COLUMNS]).cast(COLUMNS)


def _state(spec: Indicator, files: str) -> str:
    """The affected ids' rows in the state of `files`: versions.state_sql's rule over their
    versions alone (chg_versions), so that the cost follows the changed rows, not the state."""
    return versions.state_sql(spec.rows.kind, files, among="chg_versions")


def _items_sql(spec: Indicator, id_column: str) -> str:
    """Every id that can differ between the two states, with how each state counts it."""
    kind = spec.rows.kind

    def side(alias: str) -> str:
        suffix = "0" if alias == "s0" else "1"
        return (f"{alias}.{id_column} IS NOT NULL AS present{suffix}, coalesce({spec.rows.counted(alias)}, false) AS counted{suffix}, "
                f"{spec.rows.month(alias)} AS month{suffix}, {spec.rows.value(alias)}::BIGINT AS v{suffix}")

    return f"""
        WITH replaced AS MATERIALIZED (
            -- superseded versions of the ids a file of either set alone brought a version of
            SELECT * FROM history.replaced_{kind} WHERE {id_column} IN (
                SELECT {id_column} FROM core.{kind} WHERE valid_from_file_id IN (SELECT file_id FROM chg_diff_files)
                UNION ALL
                SELECT {id_column} FROM history.replaced_{kind} WHERE valid_from_file_id IN (SELECT file_id FROM chg_diff_files)
            )
        ),
        chg_versions AS MATERIALIZED (
            -- every version of those ids (history.{kind}); the current ones found by the file
            -- that brought them, a search of core by id only for ids whose current version
            -- came from a file in both sets (rare: usually nothing to search for)
            SELECT *, NULL::INTEGER AS replaced_by_file_id FROM core.{kind}
            WHERE valid_from_file_id IN (SELECT file_id FROM chg_diff_files)
            UNION ALL BY NAME
            SELECT *, NULL::INTEGER AS replaced_by_file_id FROM core.{kind}
            WHERE {id_column} IN (
                SELECT {id_column} FROM replaced WHERE valid_from_file_id IN (SELECT file_id FROM chg_diff_files)
                EXCEPT
                SELECT {id_column} FROM core.{kind} WHERE valid_from_file_id IN (SELECT file_id FROM chg_diff_files)
            )
            UNION ALL BY NAME
            SELECT * FROM replaced
        ),
        s0 AS ({_state(spec, 'chg_from_files')}),
        s1 AS ({_state(spec, 'chg_to_files')}),
        joined AS (
            SELECT coalesce(s1.{id_column}, s0.{id_column}) AS item_id, {side('s0')}, {side('s1')},
                   -- the extract that brought the change: the to-version's when a new file
                   -- brought it, else the from-version's file (one the to-set lacks)
                   CASE WHEN s1.valid_from_file_id IN (SELECT file_id FROM chg_diff_files)
                        THEN s1.valid_from_file_id ELSE s0.valid_from_file_id END AS file_id
            FROM s0 FULL OUTER JOIN s1 ON s0.{id_column} = s1.{id_column}
        )
        SELECT j.*, l.file_name FROM joined j JOIN quality.ingest_log l USING (file_id)
        WHERE (counted0 OR counted1)
    """


def _classified_sql(spec: Indicator) -> str:
    """One row per item and period whose mean it is in on either side, with its part and
    what it adds to each side (v_in, k_in)."""
    return f"""
        WITH placed AS (
            SELECT i.*, p.period_label,
                   counted0 AND month0 BETWEEN p.period_start AND p.period_end AS in0,
                   counted1 AND month1 BETWEEN p.period_start AND p.period_end AS in1
            FROM chg_items i CROSS JOIN chg_periods p
        )
        SELECT period_label, item_id, file_id, file_name, v0, v1,
               CASE WHEN in1 AND NOT in0 THEN
                        CASE WHEN NOT present0 THEN '{spec.new_part}' WHEN NOT counted0 THEN '{spec.since_part}'
                             ELSE 'dates_into_period' END
                    WHEN in0 AND NOT in1 THEN
                        CASE WHEN NOT present1 THEN 'no_longer_in_data' WHEN NOT counted1 THEN '{spec.reversed_part}'
                             ELSE 'dates_out_of_period' END
                    ELSE '{spec.corrected_part}' END AS part,
               CASE WHEN in0 THEN v0 ELSE 0 END AS v_in0, in0::INTEGER AS k_in0,
               CASE WHEN in1 THEN v1 ELSE 0 END AS v_in1, in1::INTEGER AS k_in1
        FROM placed
        WHERE (in0 OR in1) AND NOT (in0 AND in1 AND v0 = v1)
    """


def _totals_sql(spec: Indicator, side: str, current: bool) -> str:
    """n and sum of each period's mean in both states: the `side` state's from its rows
    (core.<kind> when it is the current state), the other's from it by the items."""
    base_is_to = side == "to"
    files = "chg_to_files" if base_is_to else "chg_from_files"
    base = f"core.{spec.rows.kind}" if current else f"({versions.state_sql(spec.rows.kind, files)})"
    b, o = ("1", "0") if base_is_to else ("0", "1")
    return f"""
        WITH base_months AS (
            SELECT {spec.rows.month('s')} AS month, count(*) AS n, sum({spec.rows.value('s')})::HUGEINT AS s
            FROM {base} s
            WHERE {spec.rows.counted('s')} AND {spec.rows.month('s')} BETWEEN (SELECT min(period_start) FROM chg_periods)
                                                    AND (SELECT max(period_end) FROM chg_periods)
            GROUP BY 1
        ),
        base AS (
            SELECT p.period_label, p.period_end, coalesce(sum(m.n), 0)::BIGINT AS n, coalesce(sum(m.s), 0) AS s
            FROM chg_periods p LEFT JOIN base_months m ON m.month BETWEEN p.period_start AND p.period_end GROUP BY ALL
        ),
        moved AS (
            SELECT p.period_label,
                   count(*) FILTER (counted{o} AND month{o} BETWEEN p.period_start AND p.period_end)
                   - count(*) FILTER (counted{b} AND month{b} BETWEEN p.period_start AND p.period_end) AS dn,
                   coalesce(sum(v{o}) FILTER (counted{o} AND month{o} BETWEEN p.period_start AND p.period_end), 0)
                   - coalesce(sum(v{b}) FILTER (counted{b} AND month{b} BETWEEN p.period_start AND p.period_end), 0) AS ds
            FROM chg_periods p CROSS JOIN chg_items GROUP BY ALL
        )
        SELECT b.period_label, b.period_end,
               (b.n{' + m.dn' if base_is_to else ''})::BIGINT AS n_from, (b.s{' + m.ds' if base_is_to else ''})::DOUBLE AS s_from,
               (b.n{'' if base_is_to else ' + m.dn'})::BIGINT AS n_to, (b.s{'' if base_is_to else ' + m.ds'})::DOUBLE AS s_to
        FROM base b JOIN moved m USING (period_label)
    """


def _sorted(changes: pl.DataFrame) -> pl.DataFrame:
    """Periods in time order (1-6 before 1-12 of a year), parts in PART_LABELS_FI's order."""
    year = pl.col("period_label").str.extract(r"/(\d+)$").cast(pl.Int32)
    month = pl.col("period_label").str.extract(r"^1-(\d+)/").cast(pl.Int32)
    part = pl.col("part").replace_strict(PART_ORDER, default=len(PART_ORDER))
    return changes.sort(year, month, "indicator", part, "file_id", nulls_last=True)


def _by_contribution(items: pl.DataFrame) -> pl.DataFrame:
    return items.sort(pl.col("contribution").abs(), "item_id", descending=[True, False], nulls_last=True)
