"""The nowcast's parts on small real data: the survival estimate by hand, the simulation's
edge cases, determinism, and the tables read from a real warehouse."""

import dataclasses
import datetime as dt
import os
import shutil
import subprocess
import sys

import duckdb
import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings, strategies as st
from scipy import stats

from keha_maksatus import kpi
from keha_maksatus.config import PROCESSING_TIME, SATISFACTION, load_settings
from keha_maksatus.forecast import history, nowcast, tables
from keha_maksatus.forecast.survival import Moments, hazard_counts, kaplan_meier
from keha_maksatus.sample import write_sample

from conftest import DECISION_HEADER, build_working, decision, write_export

D = "maksatuspaatokset_{}.csv"


def test_kaplan_meier_equals_a_hand_computation_and_scipy():
    # Decided at 2, 3, 5, 7 days; still pending at 3 and 5 days (censored).
    durations = np.array([2, 3, 3, 5, 5, 7])
    decided = np.array([True, True, False, True, False, True])
    events, at_risk = hazard_counts(np.zeros(6), durations, decided, np.ones(6), horizon=9)
    assert at_risk.tolist()[:8] == [6, 6, 6, 5, 3, 3, 1, 1]
    survival = kaplan_meier(events, at_risk, min_at_risk=1).survival
    # By hand: S(2) = 5/6, S(3) = 5/6 * 4/5, S(5) = that * 2/3, S(7) = 0.
    assert survival[:8] == pytest.approx([1, 1, 5 / 6, 2 / 3, 2 / 3, 4 / 9, 4 / 9, 0])
    scipy_curve = stats.ecdf(stats.CensoredData(uncensored=durations[decided], right=durations[~decided])).sf
    assert survival[:8] == pytest.approx(scipy_curve.evaluate(np.arange(8)))


def test_delayed_entry_keeps_an_application_out_of_the_risk_set_until_its_entry_age():
    # Two applications seen from birth, one only from age 3 (the window opened then).
    events, at_risk = hazard_counts(np.array([0, 0, 3]), np.array([1, 4, 4]), np.array([True, False, True]), np.ones(3), horizon=6)
    assert at_risk.tolist() == [2, 2, 1, 2, 2, 0]
    assert events.tolist() == [0, 1, 0, 0, 1, 0]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=3, max_size=40), st.data())
def test_moments_between_equal_a_direct_sum(hazard, data):
    hazard = np.array(hazard)
    moments = Moments.of(hazard)
    survival = np.cumprod(1 - hazard)
    density = np.concatenate([[1.0], survival[:-1]]) - survival
    after = data.draw(st.integers(-1, len(hazard) - 2))
    through = data.draw(st.integers(after, len(hazard) - 1))
    p, m1, m2, s_after = (a[0] for a in moments.between(np.array([after]), np.array([through])))
    condition = 1.0 if after < 0 else survival[after]
    days = np.arange(len(hazard))
    inside = (days > after) & (days <= through)
    if condition > 1e-9:
        assert p[0] == pytest.approx(density[inside].sum() / condition, abs=1e-9)
        assert m1[0] == pytest.approx((days * density)[inside].sum() / condition, abs=1e-7)
        assert m2[0] == pytest.approx((days**2 * density)[inside].sum() / condition, abs=1e-6)
    assert s_after[0] == pytest.approx(condition)


def _decided_only_warehouse(landing, tmp_path):
    write_export(landing, D.format("2022-03-31"), DECISION_HEADER, [
        decision("H1", "3.1.2022", "13.1.2022", tukimuoto="palkkatuki"),  # 10 days
        decision("H2", "10.1.2022", "9.2.2022", tukimuoto="esr"),  # 30 days
        decision("H3", "1.2.2022", "21.2.2022", tukimuoto="esr"),  # 20 days
        decision("H4", "1.3.2022", tukimuoto="esr"),  # pending
        decision("H5", "2.3.2022", tukimuoto="palkkatuki"),  # pending
    ])
    return build_working(landing, tmp_path / "work")


def test_no_pending_and_no_arrivals_give_the_seen_mean_with_zero_width(landing, tmp_path):
    con = _decided_only_warehouse(landing, tmp_path)
    model = nowcast.fit_decision_model(history.read_decision_history(con, dt.date(2022, 3, 31)), np.random.default_rng(1), min_decisions=1)
    still = dataclasses.replace(model, pending=model.pending.clear(), arrival_level={k: 0.0 for k in model.arrival_level})
    outlook = nowcast.simulate_processing_time(still, dt.date(2022, 1, 1), dt.date(2022, 12, 31), np.random.default_rng(2))
    assert outlook.seen_n == 3
    assert np.all(outlook.values == pytest.approx(60 / 3))
    q = outlook.quantiles()
    assert q[0.025] == q[0.975] == pytest.approx(20.0)


def test_deciding_every_pending_application_by_a_date_gives_the_exact_mean(landing, tmp_path):
    con = _decided_only_warehouse(landing, tmp_path)
    as_of = dt.date(2022, 3, 31)
    model = nowcast.fit_decision_model(history.read_decision_history(con, as_of), np.random.default_rng(1), min_decisions=1)
    still = dataclasses.replace(model, arrival_level={k: 0.0 for k in model.arrival_level})
    ages = still.pending["age"].to_list()  # 30 and 29 days at 31.3.
    assert sorted(ages) == [29, 30]
    decided_by = dt.date(2022, 4, 10)
    extra = sum(age + (decided_by - as_of).days for age in ages)
    outlook = nowcast.simulate_processing_time(still, dt.date(2022, 1, 1), dt.date(2022, 12, 31), np.random.default_rng(3),
                                               pending=still.pending.clear(), decided_extra=(2, extra))
    assert np.all(outlook.values == pytest.approx((60 + extra) / 5))


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A generated landing over 2021-2022 built into a working warehouse."""
    root = tmp_path_factory.mktemp("forecast")
    landing = root / "landing"
    write_sample(landing, decisions=4000, feedback=2000, seed=11, csv_only=True, first_year=2021, last_year=2022, bad_rows=False)
    con = build_working(landing, root / "work")
    yield con
    con.close()


def test_a_fixed_seed_gives_identical_forecasts_and_another_seed_other_draws(generated):
    settings_ = load_settings()
    as_of = dt.date(2022, 8, 31)
    runs = [tables.forecast_rows(tables.Nowcaster(generated, as_of, as_of, seed=s), settings_) for s in (5, 5, 6)]
    assert runs[0] == runs[1]
    assert {(r["indicator"], r["period_label"]) for r in runs[0]} == {(SATISFACTION, "1-12/2022"), (PROCESSING_TIME, "1-12/2022")}
    assert [r["median"] for r in runs[0]] != [r["median"] for r in runs[2]]


def test_intervals_are_ordered_and_narrow_as_the_period_end_nears(generated):
    settings_ = load_settings()
    widths = {}
    for month in (2, 6, 10, 12):
        as_of = dt.date(2022, month, 1) - dt.timedelta(days=1) if month > 1 else None
        rows = tables.forecast_rows(tables.Nowcaster(generated, as_of, as_of), settings_)
        for row in rows:
            assert row["low_95"] <= row["low_80"] <= row["median"] <= row["high_80"] <= row["high_95"]
            assert 0 <= row["probability_meets_target"] <= 1
            if row["period_label"] == "1-12/2022":
                widths.setdefault(row["indicator"], []).append(row["high_95"] - row["low_95"])
    for indicator, series in widths.items():
        assert series[0] > series[-1], (indicator, series)


def test_the_state_read_as_of_a_past_date_equals_the_state_built_from_the_extracts_of_then(tmp_path):
    landing = tmp_path / "landing"
    write_sample(landing, decisions=3000, feedback=100, seed=3, csv_only=True, first_year=2021, last_year=2022, bad_rows=False)
    full = build_working(landing, tmp_path / "full")
    for late in landing.glob("*_2022-12-31.csv"):
        late.unlink()
    then = build_working(landing, tmp_path / "then")
    as_of = dt.date(2022, 6, 30)
    assert kpi.as_of_date(then, "decisions") == as_of
    read_later, read_then = history.read_decision_history(full, as_of), history.read_decision_history(then, as_of)
    assert read_later.pending.sort(pl.all()).equals(read_then.pending.sort(pl.all()))
    assert read_later.survival_cells.sort(pl.all()).equals(read_then.survival_cells.sort(pl.all()))
    assert np.array_equal(read_later.decided.s, read_then.decided.s)


def test_pending_at_risk_lists_every_pending_application_with_sound_probabilities(generated):
    as_of = dt.date(2022, 9, 30)
    nowcaster = tables.Nowcaster(generated, as_of, as_of)
    risks = tables.pending_at_risk(generated, nowcaster)
    pending = {r[0] for r in generated.execute(
        "SELECT hakemus_id FROM core.decisions WHERE saapunut <= ? AND (paatetty IS NULL OR paatetty > ?)", [as_of, as_of]).fetchall()}
    assert set(risks["hakemus_id"]) == pending and risks.height == len(pending)
    assert risks["age_days"].to_list() == [(as_of - d).days for d in risks["saapunut"]]
    for column in ("probability_after_period_end", "probability_over_30_days"):
        assert risks[column].is_between(0, 1).all()
    assert (risks.filter(pl.col("age_days") >= 30)["probability_over_30_days"] == 1).all()
    assert (risks["expected_days"] >= risks["age_days"]).all()
    # The older an application of one instrument, the likelier it is over 30 days.
    for _, group in risks.filter(pl.col("age_days") < 30).group_by("tukimuoto"):
        ordered = group.sort("age_days")["probability_over_30_days"].to_numpy()
        assert np.all(np.diff(ordered) >= -1e-9)


def test_what_if_rows_cover_the_levers_and_an_earlier_deadline_never_lengthens_a_decision(generated):
    as_of = dt.date(2022, 9, 30)
    nowcaster = tables.Nowcaster(generated, as_of, as_of)
    rows = pl.DataFrame(tables.what_if_rows(generated, nowcaster, load_settings()), schema=tables.WHAT_IF_SCHEMA)
    pending_n = nowcaster.model.pending["c"].sum()
    assert set(rows["oldest_n"]) == {n for n in tables.WHAT_IF_OLDEST if n <= pending_n} | ({pending_n} if pending_n < 5000 else set())
    assert rows["decided_by"].max() == dt.date(2022, 12, 31)
    assert (rows["low_80"] <= rows["median"]).all() and (rows["median"] <= rows["high_80"]).all()
    # "Decided by D": each application's own decision day when sooner, so an earlier D never
    # adds processing days, and a deadline today leaves them at their age.
    moved = nowcaster.model.pending.select("tukimuoto", "age").head(30)
    by_day = [tables.expected_days_if_decided_by(nowcaster.model, moved, d) for d in (0, 7, 30, 90)]
    assert by_day[0] == moved["age"].sum()
    assert all(a <= b + 1e-9 for a, b in zip(by_day, by_day[1:]))
    assert by_day[-1] <= (moved["age"] + 90).sum()


def test_the_nightly_job_forecasts_the_running_year_and_warns_when_a_target_is_unlikely(tmp_path):
    from keha_maksatus.config import DEFAULT_LANDING
    from pipelines.definitions import build_definitions

    published = tmp_path / "maksatus.duckdb"
    result = build_definitions(str(DEFAULT_LANDING), str(published)).resolve_job_def("nightly").execute_in_process()
    assert result.success
    con = duckdb.connect(str(published), read_only=True)
    try:
        forecast = {row[0]: row[1:] for row in con.execute(
            "SELECT indicator, period_label, probability_meets_target FROM kpi.forecast").fetchall()}
        comments = dict(con.execute(
            "SELECT table_name, comment FROM duckdb_tables() WHERE schema_name = 'kpi' AND (table_name LIKE '%forecast%' OR table_name = 'pending_at_risk')").fetchall())
    finally:
        con.close()
    assert set(forecast) == {SATISFACTION, PROCESSING_TIME}  # the sample's 1-12/2022 is running
    assert set(comments) == {"forecast", "forecast_fan", "forecast_what_if", "pending_at_risk"} and all(comments.values())
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    for indicator, name in ((SATISFACTION, "satisfaction_on_track"), (PROCESSING_TIME, "processing_time_on_track")):
        probability = forecast[indicator][1]
        assert checks[name].passed == (probability >= 0.5)
        assert checks[name].severity.value == "WARN"
    materialized = {e.asset_key.path[-1]: e for e in result.get_asset_materialization_events()}
    metadata = materialized["forecast"].materialization.metadata
    assert metadata["processing_time_1_12_probability_meets_target"].value == pytest.approx(forecast[PROCESSING_TIME][1])


def test_the_monthly_pace_of_work_is_recovered_from_decisions_made_at_that_pace():
    days, start = 365, dt.date(2021, 12, 31)
    hazard = np.full(800, 1 / 25)  # a mean of about 25 days
    true_pace = np.array([1.0, 1.1, 1.0, 1.0, 0.9, 1.0, 0.3, 1.6, 1.1, 1.0, 1.0, 0.8])
    month_of_day = np.array([(start + dt.timedelta(days=j + 1)).month - 1 for j in range(days)])
    pending = pl.DataFrame({"tukimuoto": ["esr"] * 3, "age": [5, 20, 60], "c": [4000.0, 3000.0, 500.0]})
    arrivals = pl.DataFrame({"tukimuoto": ["esr"] * days, "day": np.arange(1, days + 1), "c": np.full(days, 150.0)})
    # The decisions each day that applications pending and arriving bring at the true pace.
    decisions = np.zeros(days)
    density, _ = nowcast.pending_paths(hazard, pending["age"].to_numpy(), true_pace[month_of_day])
    decisions += pending["c"].to_numpy() @ density
    paths = nowcast.arrival_paths(hazard, true_pace[month_of_day])
    for k in range(days):
        decisions[k:] += 150.0 * paths[k, : days - k]
    window = history.PaceWindow(start, days, pending, arrivals, decisions)
    pace = nowcast.monthly_pace(window, lambda _: hazard, rounds=12, prior=0.0)
    assert pace == pytest.approx(true_pace, rel=0.02)
    # A window without decisions teaches nothing: every month stays at 1.
    empty = nowcast.monthly_pace(history.PaceWindow(start, days, pending, arrivals, decisions * 0), lambda _: hazard)
    assert np.all(empty == 1.0)


def test_too_few_decisions_give_no_forecast_and_no_risk_list_but_the_observed_fan(landing, tmp_path):
    # Three decisions and many pending applications: nothing to learn a time to decision from.
    rows = [decision(f"D{i}", "3.1.2022", "20.1.2022") for i in range(3)] + [decision(f"P{i}", "1.2.2022") for i in range(40)]
    write_export(landing, D.format("2022-03-31"), DECISION_HEADER, rows)
    con = build_working(landing, tmp_path / "work")
    nowcaster = tables.Nowcaster(con, dt.date(2022, 3, 31), None)
    assert nowcaster.model is None
    assert tables.forecast_rows(nowcaster, load_settings()) == []
    assert tables.pending_at_risk(con, nowcaster).is_empty() and tables.what_if_rows(con, nowcaster, load_settings()) == []
    fan = pl.DataFrame(tables.fan_rows(nowcaster), schema=tables.FAN_SCHEMA)
    assert fan["observed"].all() and fan.filter(pl.col("date") == dt.date(2022, 1, 31))["value"].to_list() == [17.0]
    # The report names the running periods it could not forecast instead of dropping them.
    from keha_maksatus.outputs.report import TOO_LITTLE_DATA_FI, Paragraph, forecast_blocks

    tables.build_forecast_tables(con, load_settings())
    paragraphs = [b.text for b in forecast_blocks(con) if isinstance(b, Paragraph)]
    assert paragraphs == [TOO_LITTLE_DATA_FI.format(name=name, period=period) for period in ("1-6/2022", "1-12/2022")
                          for name in ("Asiakastyytyväisyys (1–5)", "Käsittelyaika (pv)")]  # no responses at all either


def test_the_forecast_check_warns_under_half_and_passes_without_a_forecast():
    from pipelines.assets.forecast import forecast_check_result

    def rows(median, probability):
        return pl.DataFrame([{"period_label": "1-12/2022", "as_of": dt.date(2022, 10, 31), "median": median, "low_80": median,
                              "high_80": median, "target_op": "<", "target": 30.0, "probability_meets_target": probability}],
                            schema={"period_label": pl.String, "as_of": pl.Date, "median": pl.Float64, "low_80": pl.Float64,
                                    "high_80": pl.Float64, "target_op": pl.String, "target": pl.Float64,
                                    "probability_meets_target": pl.Float64})
    assert forecast_check_result(rows(31.0, 0.2)).passed is False
    assert forecast_check_result(rows(29.0, 0.8)).passed is True
    assert forecast_check_result(rows(None, None)).passed is True


BUILD_AND_DUMP = """
import sys, duckdb
from keha_maksatus.config import load_settings
from keha_maksatus.forecast.tables import TABLE_COMMENTS, build_forecast_tables
con = duckdb.connect(sys.argv[1])
build_forecast_tables(con, load_settings())
for table in TABLE_COMMENTS:
    con.sql(f"SELECT * FROM {table}").pl().write_parquet(f"{sys.argv[2]}/{table}.parquet")
"""


def test_the_same_data_gives_the_same_forecast_bit_for_bit_in_any_process(sample_warehouse, tmp_path):
    """Python's hash seed changes from process to process (the order of a set of names):
    the forecast tables must not, to the last bit."""
    built = []
    for seed in ("1", "2", "3"):
        folder = tmp_path / seed
        folder.mkdir()
        shutil.copy(sample_warehouse, folder / "w.duckdb")
        subprocess.run([sys.executable, "-c", BUILD_AND_DUMP, str(folder / "w.duckdb"), str(folder)], check=True,
                       env={**os.environ, "PYTHONHASHSEED": seed})
        built.append({path.name: path.read_bytes() for path in sorted(folder.glob("*.parquet"))})
    assert len(built[0]) == len(tables.TABLE_COMMENTS) and all(files == built[0] for files in built[1:])
    assert pl.read_parquet(tmp_path / "1" / "kpi.pending_at_risk.parquet").height > 0
