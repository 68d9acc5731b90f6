"""The backtest: its scores computed right on rows with known values, and a small real
backtest whose rows and summary are checked against the warehouse and a recomputation
in plain Python (not that the nowcast is good: docs/forecast.md reports that)."""

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest

from keha_maksatus import cli as library_cli
from keha_maksatus import kpi
from keha_maksatus.config import PROCESSING_TIME, SATISFACTION, load_settings
from keha_maksatus.forecast import backtest
from keha_maksatus.forecast.tables import running_periods, target_of
from keha_maksatus.sample import write_sample

DATES = [dt.date(2022, 1, 31), dt.date(2022, 5, 31), dt.date(2022, 6, 30), dt.date(2022, 11, 30), dt.date(2022, 12, 31)]


def known_row(indicator=PROCESSING_TIME, months=3, actual=30.0, low_95=20.0, low_80=25.0, median=29.0, high_80=32.0,
              high_95=35.0, p=0.5, meets=True, pit=0.5, source="s", period_end=dt.date(2022, 12, 31)):
    return {"source": source, "as_of": dt.date(2022, 9, 30), "indicator": indicator, "period_label": "1-12/2022",
            "period_end": period_end, "months_before_end": months, "actual": actual, "median": median, "low_80": low_80,
            "high_80": high_80, "low_95": low_95, "high_95": high_95, "target_op": "<", "target": 30.0,
            "target_stand_in": False, "probability_meets_target": p, "actual_meets_target": meets, "pit": pit}


def frame(rows):
    return pl.DataFrame(rows, schema=backtest.ROW_SCHEMA)


def test_coverage_mae_and_brier_of_known_rows_are_exact():
    rows = frame([
        known_row(actual=30.0, median=29.0, p=0.9, meets=True),  # inside both; error 1
        known_row(actual=33.0, median=29.0, p=0.2, meets=False),  # outside 80 (high 32), inside 95; error 4
        known_row(actual=36.0, median=30.0, p=0.0, meets=False),  # outside both; error 6
        known_row(actual=25.0, median=27.0, p=1.0, meets=True),  # on the 80 % lower end: inside; error 2
        known_row(months=1, actual=20.0, median=20.0, p=0.5, meets=False, period_end=dt.date(2022, 6, 30)),  # on the 95 % end
    ])
    summary = backtest.summarise(rows, "test")
    three = summary.filter(pl.col("months_before_end") == 3).row(0, named=True)
    assert (three["forecasts"], three["periods"]) == (4, 1)
    assert three["coverage_80"] == pytest.approx(2 / 4)
    assert three["coverage_95"] == pytest.approx(3 / 4)
    assert three["mae"] == pytest.approx((1 + 4 + 6 + 2) / 4)
    assert three["brier"] == pytest.approx(((0.9 - 1) ** 2 + 0.2**2 + 0 + 0) / 4)
    assert three["mean_width_80"] == pytest.approx(7.0) and three["mean_width_95"] == pytest.approx(15.0)
    overall = summary.filter(pl.col("months_before_end").is_null()).row(0, named=True)
    assert (overall["forecasts"], overall["periods"], overall["sources"]) == (5, 2, "test")
    assert overall["coverage_80"] == pytest.approx(2 / 5)  # 20 is below the 80 % interval (25..32)
    assert overall["coverage_95"] == pytest.approx(4 / 5)
    assert overall["brier"] == pytest.approx(((0.9 - 1) ** 2 + 0.2**2 + 0.5**2) / 5)


def test_brier_leaves_out_rows_without_a_target_and_indicators_are_kept_apart():
    rows = frame([
        known_row(p=1.0, meets=False),
        {**known_row(p=None, meets=None), "target_op": None, "target": None},
        known_row(indicator=SATISFACTION, actual=4.1, low_95=4.0, low_80=4.05, median=4.1, high_80=4.15, high_95=4.2, p=0.5, meets=True),
    ])
    summary = backtest.summarise(rows).filter(pl.col("months_before_end").is_null())
    processing = summary.filter(pl.col("indicator") == PROCESSING_TIME).row(0, named=True)
    satisfaction = summary.filter(pl.col("indicator") == SATISFACTION).row(0, named=True)
    assert processing["forecasts"] == 2 and processing["brier"] == pytest.approx(1.0)
    assert satisfaction["forecasts"] == 1 and satisfaction["brier"] == pytest.approx(0.25)
    assert satisfaction["mae"] == pytest.approx(0.0)


def test_calibration_counts_the_pits_inside_each_central_interval():
    pits = [0.5, 0.45, 0.3, 0.1, 0.96, 0.99, 0.025, 0.7]
    table = backtest.calibration(frame([known_row(pit=p) for p in pits]), nominal=(0.1, 0.5, 0.8, 0.95))
    observed = dict(zip(table["nominal"], table["observed"]))
    # Central c-interval: |pit - 0.5| <= c / 2.
    assert observed[0.1] == pytest.approx(2 / 8)  # 0.5, 0.45
    assert observed[0.5] == pytest.approx(4 / 8)  # + 0.3, 0.7 (on the ends)
    assert observed[0.8] == pytest.approx(5 / 8)  # + 0.1
    assert observed[0.95] == pytest.approx(7 / 8)  # + 0.025 and 0.96; 0.99 is outside 0.025..0.975


def test_pit_months_and_month_ends():
    values = np.arange(100, dtype=float)
    assert backtest.pit(values, 49.5) == pytest.approx(0.5)
    assert backtest.pit(values, 10.0) == pytest.approx(10.5 / 100)  # ten below, one tie counted half
    assert backtest.pit(np.array([1.0, np.nan, 3.0]), 2.0) == pytest.approx(0.5)
    assert backtest.months_between(dt.date(2022, 1, 31), dt.date(2022, 6, 30)) == 5
    assert backtest.months_between(dt.date(2021, 11, 30), dt.date(2022, 6, 30)) == 7
    ends = backtest.month_ends_between(dt.date(2021, 11, 15), dt.date(2022, 2, 28))
    assert ends == [dt.date(2021, 11, 30), dt.date(2021, 12, 31), dt.date(2022, 1, 31), dt.date(2022, 2, 28)]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A small generated landing folder (2021-2022) and its warehouse."""
    folder = tmp_path_factory.mktemp("backtest")
    write_sample(folder / "landing", decisions=4000, feedback=2000, seed=3, csv_only=True, first_year=2021, last_year=2022)
    con = backtest.build_warehouse(folder / "landing", folder / "state", load_settings())
    yield con
    con.close()


@pytest.fixture(scope="module")
def small_rows(small):
    return backtest.backtest_rows(small, DATES, load_settings(), "seed 3", draws=1000)


def test_rows_are_the_running_periods_against_the_final_values_of_the_quality_section(small, small_rows):
    settings = load_settings()
    expected = {(a, i, label) for a in DATES for i in (PROCESSING_TIME, SATISFACTION) for label, _, _ in running_periods(a)}
    assert {(r["as_of"], r["indicator"], r["period_label"]) for r in small_rows.iter_rows(named=True)} == expected
    finals = {
        (indicator, label): value
        for indicator, label, value in small.execute("SELECT indicator, period_label, value FROM kpi.quality_section WHERE complete").fetchall()
    }
    for row in small_rows.iter_rows(named=True):
        assert row["actual"] == pytest.approx(finals[(row["indicator"], row["period_label"])], rel=1e-12)
        op, target = target_of(settings, 2022, row["indicator"])
        assert (row["target_op"], row["target"], row["target_stand_in"]) == (op, target, False)
        assert row["actual_meets_target"] == (row["actual"] > target if op == ">" else row["actual"] < target)
        assert row["low_95"] <= row["low_80"] <= row["median"] <= row["high_80"] <= row["high_95"]
        assert 0 <= row["pit"] <= 1 and 0 <= row["probability_meets_target"] <= 1
        assert row["months_before_end"] == (row["period_end"].month - row["as_of"].month)


def test_the_summary_of_real_rows_equals_a_plain_python_recomputation(small_rows):
    summary = backtest.summarise(small_rows)
    rows = list(small_rows.iter_rows(named=True))
    groups = {}
    for row in rows:
        groups.setdefault((row["indicator"], row["months_before_end"]), []).append(row)
        groups.setdefault((row["indicator"], None), []).append(row)
    assert summary.height == len(groups)
    for got in summary.iter_rows(named=True):
        members = groups[(got["indicator"], got["months_before_end"])]
        n = len(members)
        assert got["forecasts"] == n
        assert got["periods"] == len({(r["source"], r["period_end"]) for r in members})
        assert got["coverage_80"] == pytest.approx(sum(r["low_80"] <= r["actual"] <= r["high_80"] for r in members) / n)
        assert got["coverage_95"] == pytest.approx(sum(r["low_95"] <= r["actual"] <= r["high_95"] for r in members) / n)
        assert got["mae"] == pytest.approx(sum(abs(r["median"] - r["actual"]) for r in members) / n)
        assert got["brier"] == pytest.approx(
            sum((r["probability_meets_target"] - float(r["actual_meets_target"])) ** 2 for r in members) / n
        )
    markdown = backtest.markdown_summary(summary)
    assert markdown.count("| **all** |") == 2 and "80 % covered" in markdown


def test_the_backtest_is_deterministic(small, small_rows):
    again = backtest.backtest_rows(small, DATES, load_settings(), "seed 3", draws=1000)
    assert again.equals(small_rows)


def test_periods_the_data_does_not_cover_are_left_out_and_older_years_use_stand_in_targets(tmp_path):
    # Decisions stand at 30.6.2022 and responses at 31.12.2021: 1-12/2022 has no final
    # value for either, 1-6/2022 only for processing time.
    write_sample(tmp_path / "landing", decisions=3000, feedback=1500, seed=5, csv_only=True, first_year=2021, last_year=2022)
    for path in tmp_path.glob("landing/*_2022-12-31.csv"):
        path.unlink()
    settings = load_settings()
    con = backtest.build_warehouse(tmp_path / "landing", tmp_path / "state", settings)
    try:
        assert kpi.as_of_date(con, "decisions") == dt.date(2022, 6, 30)
        rows = backtest.backtest_rows(con, [dt.date(2021, 9, 30), dt.date(2022, 3, 31)], settings, "cut", draws=500)
    finally:
        con.close()
    seen = {(r["indicator"], r["period_label"]): r for r in rows.iter_rows(named=True)}
    assert set(seen) == {(PROCESSING_TIME, "1-12/2021"), (SATISFACTION, "1-12/2021"), (PROCESSING_TIME, "1-6/2022")}
    stand_in = seen[(SATISFACTION, "1-12/2021")]
    assert stand_in["target_stand_in"] and (stand_in["target_op"], stand_in["target"]) == target_of(settings, 2022, SATISFACTION)
    assert not seen[(PROCESSING_TIME, "1-6/2022")]["target_stand_in"]


def test_the_command_writes_rows_summary_markdown_and_the_doc_block(tmp_path, capsys):
    doc = tmp_path / "forecast.md"
    doc.write_text(f"# Ennuste\n\nbefore\n{backtest.DOC_BEGIN}\nold figures\n{backtest.DOC_END}\nafter\n", encoding="utf-8")
    out = tmp_path / "out"
    code = library_cli.main(["backtest", "--seeds", "2", "--decisions", "3000", "--feedback", "1500", "--no-sample",
                             "--draws", "500", "--out", str(out), "--doc", str(doc)])
    assert code == 0
    printed = capsys.readouterr().out
    rows = pl.read_csv(out / "backtest_rows.csv", try_parse_dates=True)
    summary = pl.read_csv(out / "backtest_summary.csv")
    # Every month end of 2021-2022 after the warm-up year 2020 with a running period.
    assert set(rows["as_of"].unique()) == {d for y in (2021, 2022) for d in backtest.month_ends(y) if d.month != 12}
    assert set(rows["source"]) == {"seed 2"}
    assert summary["forecasts"].sum() == 2 * rows.height  # each row once by horizon, once overall
    text = doc.read_text(encoding="utf-8")
    assert text.startswith("# Ennuste\n\nbefore\n") and text.endswith(f"{backtest.DOC_END}\nafter\n")
    assert "old figures" not in text and "| **all** |" in text and "| **all** |" in printed
    assert (out / "backtest.md").read_text(encoding="utf-8") in text
    figure = next(out.glob("forecast_calibration.*"))
    assert figure.stat().st_size > 1000
    if figure.suffix == ".png":
        assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / figure.name).exists()
    assert not math.isnan(summary["coverage_95"].mean())
