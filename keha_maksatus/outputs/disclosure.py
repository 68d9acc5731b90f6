"""What people may see: the under-5 rule for everything people read (the report,
dashboards and exports). The warehouse's breakdown tables apply the same rule in SQL
(kpi.SUPPRESSED_CELLS, with kpi.MIN_CELL_RESPONSES, the one threshold).

The published warehouse keeps exact figures for analysts. The report, the dashboards and
the exports read the published file only through `open_for_people`, which holds the KPI
and forecast tables in their people-facing form (`for_people`): every satisfaction figure
resting on fewer than MIN_CELL_RESPONSES scored responses is withheld (null) and flagged
(a forecast too, when the responses seen so far or expected in all are that few), and of
the quality tables only the columns people are shown (no raw values, no reasons). The
publication history the report quotes (history.quality_section, history.changes) is held
the same way (history_for_people).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa

from keha_maksatus.config import SATISFACTION
from keha_maksatus.forecast.tables import TABLE_COMMENTS as FORECAST_TABLE_COMMENTS
from keha_maksatus.history.changes import QUARANTINED_PART, value_changed
from keha_maksatus.kpi import MIN_CELL_RESPONSES, TABLE_COMMENTS as KPI_TABLE_COMMENTS

SUPPRESSED_FI = f"alle {MIN_CELL_RESPONSES} vastausta"
# Every published table of figures: the KPIs and the forecast.
TABLE_COMMENTS = {**KPI_TABLE_COMMENTS, **FORECAST_TABLE_COMMENTS}
FORECAST_FIGURES = ("median", "low_80", "high_80", "low_95", "high_95")


@dataclass(frozen=True)
class Withhold:
    """Figures of a row withheld when the count in `n` (or any of several counts) is under
    MIN_CELL_RESPONSES; `flag` is set true on such rows. With `satisfaction_only`, only the
    rows of the satisfaction indicator (tables holding both indicators)."""

    n: str | tuple[str, ...]
    figures: tuple[str, ...]
    flag: str
    satisfaction_only: bool = False


# Every KPI table people may see, with what must be withheld in it. A KPI table missing
# here is not shown at all, so a new table cannot slip out unsuppressed.
PEOPLE_TABLES: dict[str, tuple[Withhold, ...]] = {
    "kpi.quality_section": (
        # met too: it tells on which side of the target the withheld value lies.
        Withhold("n", ("value", "met"), "suppressed", satisfaction_only=True),
    ),
    "kpi.quality_section_details": (
        Withhold("n", ("ci_low", "ci_high"), "suppressed", satisfaction_only=True),
        Withhold("campaign_n", ("campaign_value",), "campaign_suppressed", satisfaction_only=True),
    ),
    "kpi.satisfaction_monthly": (Withhold("n", ("mean_score", "ci_low", "ci_high", "share_4_5"), "suppressed"),),
    "kpi.satisfaction_by_instrument": (Withhold("n", ("mean_score", "ci_low", "ci_high", "share_4_5"), "suppressed"),),
    "kpi.monthly_trend": (Withhold("n", ("value", "ci_low", "ci_high"), "suppressed", satisfaction_only=True),),
    "kpi.processing_time_monthly": (),
    "kpi.processing_time_distribution": (),
    "kpi.backlog": (),
    # A satisfaction forecast rests on the responses seen so far and those expected: it is
    # withheld when either count is under the threshold; the probability too (it tells on
    # which side of the target the withheld value lies).
    "kpi.forecast": (
        Withhold(("seen_n", "expected_n"), ("seen_value", *FORECAST_FIGURES, "probability_meets_target"), "suppressed",
                 satisfaction_only=True),
    ),
    # seen_n: the count at the as-of date, which every forecast point of the fan rests on.
    "kpi.forecast_fan": (
        Withhold(("n", "seen_n"), ("value", *FORECAST_FIGURES[1:]), "suppressed", satisfaction_only=True),
    ),
    "kpi.pending_at_risk": (),  # processing time only
    "kpi.forecast_what_if": (),  # processing time only
}
# Quality tables as people see them: which files were read and which rules rejected rows.
QUALITY_VIEWS = {
    "quality.ingest_log": "file_id, file_name, kind, extract_date, status, rows_read, rows_valid, rows_rejected",
    "quality.quarantine": "file_id, file_name, line, column_name, rule",
    "meta.publication": "published_at, as_of, decisions, responses",
}
# meta.publication keeps every publish; the figures people read are the newest one's.
NEWEST_ROW_ONLY = {"meta.publication": "ORDER BY publication_no DESC LIMIT 1"}

# The publication history people may see (the report quotes earlier publishes and the
# changes since the last one), with what must be withheld. A part of a satisfaction change
# rests on its items (responses): when any part of a period's change is withheld, every
# part of it is (fewest_items), else the withheld one would be the total less the others.
HISTORY_PEOPLE_TABLES: dict[str, tuple[Withhold, ...]] = {
    "history.quality_section": (Withhold("n", ("value", "met"), "suppressed", satisfaction_only=True),),
    "history.changes": (
        Withhold("n_from", ("value_from",), "suppressed_from", satisfaction_only=True),
        Withhold("n_to", ("value_to",), "suppressed_to", satisfaction_only=True),
        Withhold(("n_from", "n_to", "fewest_items"), ("contribution",), "contribution_suppressed", satisfaction_only=True),
    ),
}
HISTORY_VIEWS = {"history.publication": "publication_no, published_at, as_of"}
CHANGE_KEY = ("indicator", "period_label", "from_publication_no", "to_publication_no")


def withhold(frame: pl.DataFrame, rule: Withhold) -> pl.DataFrame:
    """The frame with rule.figures null and rule.flag true where rule.n < MIN_CELL_RESPONSES
    (a null count is treated as none); with several counts, where any of them is."""
    counts = (rule.n,) if isinstance(rule.n, str) else rule.n
    hidden = pl.any_horizontal(*[pl.col(n).fill_null(0) < MIN_CELL_RESPONSES for n in counts])
    if rule.satisfaction_only:
        hidden = hidden & (pl.col("indicator") == SATISFACTION)
    return frame.with_columns(
        *[pl.when(hidden).then(None).otherwise(pl.col(c)).alias(c) for c in rule.figures],
        hidden.alias(rule.flag),
    )


def for_people(frames: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """The people-facing form of published KPI frames (table name -> frame): tables not
    in PEOPLE_TABLES dropped, satisfaction figures under MIN_CELL_RESPONSES withheld, NaN
    as null."""
    unknown = set(frames) - set(PEOPLE_TABLES)
    if unknown - set(TABLE_COMMENTS):
        raise ValueError(f"not KPI tables: {sorted(unknown - set(TABLE_COMMENTS))}")
    frames = dict(frames)
    details = frames.get("kpi.quality_section_details")
    if details is not None and "n" not in details.columns:
        # The details carry no count of their own: the period's n is in the quality section.
        counts = frames["kpi.quality_section"].select("indicator", "period_label", "n")
        frames["kpi.quality_section_details"] = details.join(counts, on=["indicator", "period_label"], how="left")
    fan = frames.get("kpi.forecast_fan")
    if fan is not None and "seen_n" not in fan.columns:
        frames["kpi.forecast_fan"] = with_seen_n(fan)
    people = {}
    for table, frame in frames.items():
        if table not in PEOPLE_TABLES:
            continue
        # A figure that could not be computed (NaN, e.g. an effect on a mean with nothing
        # to compare) is no figure: an empty cell, never "NaN" or a spreadsheet error.
        frame = frame.with_columns(pl.col(pl.Float32, pl.Float64).fill_nan(None))
        for rule in PEOPLE_TABLES[table]:
            frame = withhold(frame, rule)
        people[table] = frame
    return people


def history_for_people(frames: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """The people-facing form of the published history tables (table name -> frame, those
    of HISTORY_PEOPLE_TABLES): satisfaction figures under MIN_CELL_RESPONSES withheld. The
    one rule for every change people or operators read: the report, `keha-maksatus
    explain` and the Dagster check (changes_between's frames, without the publication
    numbers, are taken as one comparison)."""
    people = {}
    for table, frame in frames.items():
        if table == "history.changes":
            # Whether the value changed is told from the exact values, before any is withheld.
            # Rows newly quarantined add nothing to a mean (contribution 0): not a part to hide.
            counted = pl.when(pl.col("part") != QUARANTINED_PART).then(pl.col("items"))
            key = [c for c in CHANGE_KEY if c in frame.columns]
            frame = frame.with_columns(counted.min().over(key).alias("fewest_items"), value_changed().alias("value_changed"))
        frame = frame.with_columns(pl.col(pl.Float32, pl.Float64).fill_nan(None))
        for rule in HISTORY_PEOPLE_TABLES[table]:
            frame = withhold(frame, rule)
        people[table] = frame
    return people


def with_seen_n(fan: pl.DataFrame) -> pl.DataFrame:
    """The fan with seen_n: the observed count at the as-of date (the newest observed
    point) of its indicator and year, which every point of the year's fan rests on."""
    seen = (
        fan.filter(pl.col("observed")).sort("date")
        .group_by("indicator", "year").agg(pl.col("n").last().alias("seen_n"))
    )
    return fan.join(seen, on=["indicator", "year"], how="left", maintain_order="left")


def read_for_people(con: duckdb.DuckDBPyConnection, catalog: str | None = None) -> dict[str, pl.DataFrame]:
    """Every people-facing KPI table from a connection to the published warehouse (or
    to one that holds it attached as `catalog`)."""
    prefix = f"{catalog}." if catalog else ""
    return for_people({table: con.sql(f"SELECT * FROM {prefix}{table}").pl() for table in PEOPLE_TABLES})


def open_for_people(published_path: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection holding what people may see of the published
    file, under the published names (kpi.*, quality.*, meta.publication): the KPI tables
    in their people-facing form, and views of the quality tables' shown columns. The
    file is attached once, so everything comes from one snapshot of it."""
    published_path = Path(published_path)
    con = duckdb.connect(":memory:")
    try:
        con.execute("ATTACH ? AS published_file (READ_ONLY)", [str(published_path)])
        present = _present(con, "published_file")
        figures, history = _people_frames(con, published_path, "published_file", present)
        history_views = [t for t in HISTORY_VIEWS if t in present]
        for schema in ("kpi", "quality", "meta", *(("history",) if history or history_views else ())):
            con.execute(f"CREATE SCHEMA {schema}")
        for number, (table, frame) in enumerate({**figures, **history}.items()):
            # A view of the frame, not a copy: the frames may serve several connections.
            con.register(f"people_frame_{number}", frame)
            con.execute(f"CREATE VIEW {table} AS SELECT * FROM people_frame_{number}")
        for table, columns in QUALITY_VIEWS.items():
            rows = NEWEST_ROW_ONLY.get(table, "")
            con.execute(f"CREATE VIEW {table} AS SELECT {columns} FROM published_file.{table} {rows}")
        for table in history_views:
            con.execute(f"CREATE VIEW {table} AS SELECT {HISTORY_VIEWS[table]} FROM published_file.{table}")
    except BaseException:
        con.close()
        raise
    return con


# The people-facing frames of the last published file read, by its identity: the report,
# the dashboards and the exports of one run read the same file one after the other.
_last_read: dict[tuple, tuple[dict[str, pa.Table], dict[str, pa.Table]]] = {}


def _file_identity(path: Path) -> tuple:
    stat = path.stat()
    return str(path.resolve()), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns


def _people_frames(
    con: duckdb.DuckDBPyConnection, path: Path, catalog: str, present: set[str]
) -> tuple[dict[str, pa.Table], dict[str, pa.Table]]:
    """(KPI frames, history frames) people may see of the attached file (`present`: its
    tables and views); read again only when the file is another one (replaced by a
    publish, or written since)."""
    identity = _file_identity(path)
    if identity in _last_read:
        return _last_read[identity]
    history = {t: con.sql(f"SELECT * FROM {catalog}.{t}").pl() for t in HISTORY_PEOPLE_TABLES if t in present}
    # As Arrow: a connection reads it as it is, with no conversion per connection.
    read = tuple({table: frame.to_arrow() for table, frame in frames.items()}
                 for frames in (read_for_people(con, catalog), history_for_people(history)))
    if _file_identity(path) == identity:  # not replaced while it was read
        _last_read.clear()
        _last_read[identity] = read
    return read


def _present(con: duckdb.DuckDBPyConnection, catalog: str) -> set[str]:
    """The tables and views of the attached file (one published by an earlier version
    may lack the history ones)."""
    return {f"{s}.{t}" for s, t in con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = ? "
        "UNION ALL SELECT schema_name, view_name FROM duckdb_views() WHERE database_name = ?", [catalog, catalog]
    ).fetchall()}
