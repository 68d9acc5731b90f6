"""The sample generator: deterministic, chunked, and as hard to forecast as real data
(seasonality, drift, instruments that differ, a backlog that ages)."""

import datetime as dt
import hashlib
from pathlib import Path

import duckdb
import numpy as np
import pytest

from keha_maksatus import sample
from keha_maksatus.sample import SAMPLE_DECISION_EXTRACTS, SAMPLE_FEEDBACK_EXTRACTS, write_sample

from conftest import build_working, quality_row

REPO = Path(__file__).resolve().parents[1]
FIRST_YEAR, LAST_YEAR = 2021, 2022
LAST_EXTRACT = dt.date(LAST_YEAR, 12, 31)


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def two_years(tmp_path_factory) -> duckdb.DuckDBPyConnection:
    """A generated two-year landing folder (about 20,000 applications) ingested through the
    library; the working connection."""
    base = tmp_path_factory.mktemp("two_years")
    write_sample(base / "landing", decisions=20_000, feedback=8_000, seed=11, csv_only=True,
                 first_year=FIRST_YEAR, last_year=LAST_YEAR, bad_rows=False)
    con = build_working(base / "landing", base / "work", today=LAST_EXTRACT)
    yield con
    con.close()


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params=None):
    return con.sql(sql, params=params).fetchall()[0][0]


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    for out, seed in (("a", 5), ("b", 5), ("c", 6)):
        write_sample(tmp_path / out, decisions=1500, feedback=400, seed=seed)
    assert digests(tmp_path / "a") == digests(tmp_path / "b")
    assert {p.suffix for p in (tmp_path / "a").iterdir()} == {".csv", ".xlsx", ".parquet"}
    other = digests(tmp_path / "c")
    assert other.keys() == digests(tmp_path / "a").keys()
    assert all(other[name] != digest for name, digest in digests(tmp_path / "a").items())


def test_chunks_join_up_to_every_application_once(tmp_path, monkeypatch):
    monkeypatch.setattr(sample, "CHUNK_ROWS", 700)  # three chunks and a part
    write_sample(tmp_path / "landing", decisions=2500, feedback=900, seed=3, csv_only=True, bad_rows=False)
    con = build_working(tmp_path / "landing", tmp_path / "work", today=LAST_EXTRACT)
    try:
        assert scalar(con, "SELECT count(DISTINCT hakemus_id) FROM core.decisions") == 2500
        assert scalar(con, "SELECT count(DISTINCT vastaus_id) FROM core.feedback") == 900
        assert scalar(con, "SELECT count(*) FROM quality.quarantine") == 0
    finally:
        con.close()


def test_arrivals_cover_the_range_and_follow_the_months(two_years):
    first, last = two_years.sql("SELECT min(saapunut), max(saapunut) FROM core.decisions").fetchall()[0]
    assert first == dt.date(FIRST_YEAR, 1, 1) and last <= LAST_EXTRACT - dt.timedelta(days=5)
    assert last >= LAST_EXTRACT - dt.timedelta(days=12)
    per_day = dict(two_years.sql("""
        SELECT month(saapunut), count(*) / count(DISTINCT year(saapunut)) / max(day(last_day(saapunut)))
        FROM core.decisions GROUP BY ALL
    """).fetchall())
    assert per_day[7] < 0.6 * per_day[3] and per_day[7] < 0.6 * per_day[9]
    # Every day of the range can receive: the calendar gives each a positive share.
    calendar = sample._Calendar.build(11, dt.date(FIRST_YEAR, 1, 1), LAST_EXTRACT)
    assert (calendar.arrival_p > 0).all() and calendar.arrival_p.shape[1] == (LAST_EXTRACT - dt.date(FIRST_YEAR, 1, 1)).days - 5


def test_decisions_slow_down_in_july(two_years):
    decided = dict(two_years.sql("""
        SELECT month(paatetty), count(*) FROM core.decisions
        WHERE paatetty IS NOT NULL AND year(paatetty) = ? GROUP BY ALL
    """, params=[LAST_YEAR]).fetchall())
    assert decided[7] < 0.5 * decided[6] and decided[7] < 0.5 * decided[8]
    assert scalar(two_years, "SELECT count(*) FROM core.decisions WHERE dayofweek(paatetty) IN (0, 6)") == 0

    def mean_days(month: int) -> float:  # applications received in the second half of a month
        return scalar(two_years, """
            SELECT avg(kasittelyaika_pv) FROM core.decisions
            WHERE month(saapunut) = ? AND day(saapunut) >= 15 AND tukimuoto = 'palkkatuki'
        """, params=[month])

    assert mean_days(6) > mean_days(5) + 5  # a June application waits over July


def test_instruments_differ_in_level_and_shape(two_years):
    stats = {row[0]: row[1:] for row in two_years.sql("""
        SELECT tukimuoto, median(kasittelyaika_pv), quantile_cont(kasittelyaika_pv, 0.9),
               (quantile_cont(kasittelyaika_pv, 0.75) - quantile_cont(kasittelyaika_pv, 0.25)) / median(kasittelyaika_pv)
        FROM core.decisions WHERE paatetty IS NOT NULL GROUP BY ALL
    """).fetchall()}
    assert set(stats) == set(sample.INSTRUMENTS)
    fast = stats["kulukorvaus"]
    for median, p90, spread in (stats["esr"], stats["eakr"]):  # slower, long-tailed, wider
        assert median > fast[0] * 1.5
        assert p90 / median > fast[1] / fast[0] and spread > fast[2] * 1.5
    arrivals = dict(two_years.sql("""
        SELECT tukimuoto, count(*) FILTER (WHERE month(saapunut) = 7) / count(*) FROM core.decisions GROUP BY ALL
    """).fetchall())
    assert arrivals["esr"] < arrivals["kulukorvaus"]  # project payments follow the seasons more strongly


def test_some_applications_stall_and_the_backlog_ages(two_years):
    old_pending = scalar(two_years, """
        SELECT count(*) FROM core.decisions WHERE paatetty IS NULL AND ? - saapunut > 90
    """, params=[LAST_EXTRACT])
    assert old_pending > 0
    long_share = scalar(two_years, "SELECT avg((kasittelyaika_pv > 90)::INT) FROM core.decisions WHERE paatetty IS NOT NULL")
    assert 0.01 < long_share < 0.10
    assert scalar(two_years, "SELECT max(kasittelyaika_pv) FROM core.decisions") > 200


def test_the_figures_stay_realistic(two_years):
    days = quality_row(two_years, "maksatus_kasittelyaika_pv", f"1-12/{LAST_YEAR}")
    score = quality_row(two_years, "maksatus_asiakastyytyvaisyys", f"1-12/{LAST_YEAR}")
    assert 25 <= days["value"] <= 35 and days["complete"]
    assert 3.9 <= score["value"] <= 4.2 and score["n"] > 1000


def test_responses_are_fewer_in_july(two_years):
    per_day = dict(two_years.sql("""
        SELECT month(vastattu), count(*) / count(DISTINCT year(vastattu)) / max(day(last_day(vastattu)))
        FROM core.feedback GROUP BY ALL
    """).fetchall())
    assert per_day[7] < 0.6 * per_day[3]


def test_drift_differs_by_seed_and_year_within_bounds():
    start, end = dt.date(2020, 1, 1), dt.date(2025, 12, 31)
    by_seed = []
    for seed in range(6):
        calendar = sample._Calendar.build(seed, start, end)
        changes = []
        for year in range(2020, 2026):
            begin, close = ((dt.date(year, m, d) - start).days for m, d in ((1, 1), (12, 31)))
            changes.append(calendar.processing_factor[close] / calendar.processing_factor[begin] - 1)
        assert all(sample.PROCESSING_DRIFT[0] - 1e-9 <= c <= sample.PROCESSING_DRIFT[1] + 1e-9 for c in changes)
        assert min(changes) < -0.02 or max(changes) > 0.02  # years differ
        by_seed.append(tuple(changes))
    assert len(set(by_seed)) == len(by_seed)
    # The score's monthly pattern: a dip after the slow July.
    assert calendar.score_shift[(dt.date(2024, 8, 15) - start).days] < calendar.score_shift[(dt.date(2024, 4, 15) - start).days]


def test_the_bundled_sample_ends_while_its_last_year_runs():
    newest = {SAMPLE_DECISION_EXTRACTS[-1].date, SAMPLE_FEEDBACK_EXTRACTS[-1].date}
    assert newest == {dt.date(2022, 10, 31)}
    names = {e.file_name("maksatuspaatokset") for e in SAMPLE_DECISION_EXTRACTS} | {
        e.file_name("asiakaspalaute") for e in SAMPLE_FEEDBACK_EXTRACTS
    }
    assert {p.name for p in (REPO / "data" / "sample").iterdir()} == names
    formats = {(e.fmt, e.encoding, e.separator, e.iso) for e in SAMPLE_DECISION_EXTRACTS + SAMPLE_FEEDBACK_EXTRACTS}
    assert {("csv", "utf-8-sig", ";", False), ("csv", "cp1252", ";", False), ("csv", "utf-8", "\t", True)} <= formats
    assert {f for f, *_ in formats} == {"csv", "xlsx", "parquet"}
