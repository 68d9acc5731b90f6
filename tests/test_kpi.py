"""Every KPI rule of the contract on tiny hand-computed data."""

import datetime as dt

import pytest

from keha_maksatus.config import PROCESSING_TIME, SATISFACTION

from conftest import DECISION_HEADER, FEEDBACK_HEADER, build_working, decision, quality_row, response, write_export

D = "maksatuspaatokset_{}.csv"
F = "asiakaspalaute_{}.csv"


def test_processing_time_mean_net_and_pending(landing, tmp_path):
    write_export(landing, D.format("2022-12-31"), DECISION_HEADER, [
        decision("H1", "1.1.2022", "11.1.2022"),  # 10 days
        decision("H2", "1.2.2022", "1.3.2022", taydennys="5"),  # 28 days, net 23
        decision("H3", "1.3.2022"),  # pending: not in the mean
        decision("H4", "1.8.2022", "15.8.2022"),  # 14 days, second half
    ])
    con = build_working(landing, tmp_path / "work")
    first_half = quality_row(con, PROCESSING_TIME, "1-6/2022")
    assert (first_half["n"], first_half["value"]) == (2, 19.0)
    whole_year = quality_row(con, PROCESSING_TIME, "1-12/2022")
    assert whole_year["n"] == 3 and whole_year["value"] == pytest.approx(52 / 3)
    assert whole_year["target_op"] == "<" and whole_year["target"] == 30.0 and whole_year["met"] is True
    net = con.execute(
        "SELECT net_value FROM kpi.quality_section_details WHERE indicator = ? AND period_label = '1-6/2022'", [PROCESSING_TIME]
    ).fetchall()[0][0]
    assert net == 16.5
    backlog = con.execute("SELECT sum(n) FROM kpi.backlog").fetchall()[0][0]
    assert backlog == 1


def test_target_comparison_is_strict(landing, tmp_path):
    write_export(landing, D.format("2022-12-31"), DECISION_HEADER, [
        decision("H1", "1.1.2022", "31.1.2022"),  # exactly 30 days
    ])
    write_export(landing, F.format("2022-12-31"), FEEDBACK_HEADER, [
        response("V1", "1.3.2022", "5"), response("V2", "1.3.2022", "3"),  # exactly 4.0
    ])
    con = build_working(landing, tmp_path / "work")
    assert quality_row(con, PROCESSING_TIME, "1-12/2022")["met"] is False
    satisfaction = quality_row(con, SATISFACTION, "1-12/2022")
    assert satisfaction["value"] == 4.0 and satisfaction["met"] is False


def test_satisfaction_excludes_eos_campaigns_and_other_services(landing, tmp_path):
    write_export(landing, F.format("2022-12-31"), FEEDBACK_HEADER, [
        response("V1", "1.3.2022 10:00", "5"),
        response("V2", "2.3.2022", "4"),
        response("V3", "2022-03-03 12:00:00", "3", kysely="jalkikysely"),
        response("V4", "4.3.2022", "EOS"),  # no score
        response("V5", "5.3.2022", ""),  # no score
        response("V6", "6.3.2022", "1", kysely="kampanja"),  # campaign: reported separately
        response("V7", "7.3.2022", "1", palvelu="neuvonta"),  # another service
        response("V8", "8.3.2022", "6"),  # rejected
    ])
    con = build_working(landing, tmp_path / "work")
    row = quality_row(con, SATISFACTION, "1-6/2022")
    assert (row["n"], row["value"]) == (3, 4.0)
    details = con.sql(
        "SELECT * FROM kpi.quality_section_details WHERE indicator = ? AND period_label = '1-6/2022'", params=[SATISFACTION]
    ).pl().row(0, named=True)
    assert (details["campaign_n"], details["campaign_value"]) == (1, 1.0)
    # mean 4, sd 1, n 3: t(2) = 4.303, half-width 4.303 / sqrt(3) = 2.484 (approximation within 0.1 at df 2)
    assert details["ci_low"] == pytest.approx(4 - 2.484, abs=0.1) and details["ci_high"] == pytest.approx(4 + 2.484, abs=0.1)


def test_latest_extract_wins_in_file_name_order(landing, tmp_path):
    db = tmp_path / "work"
    # The later extract arrives first; the earlier one is dropped in afterwards.
    write_export(landing, D.format("2022-12-31"), DECISION_HEADER, [decision("H1", "1.6.2022", "1.9.2022")])  # 92 days
    build_working(landing, db).close()
    write_export(landing, D.format("2022-06-30"), DECISION_HEADER, [decision("H1", "1.6.2022")])  # pending then
    con = build_working(landing, db)
    assert con.execute("SELECT paatetty, kasittelyaika_pv FROM core.decisions").fetchall() == [(dt.date(2022, 9, 1), 92)]
    assert quality_row(con, PROCESSING_TIME, "1-12/2022")["value"] == 92.0


def test_later_extract_decides_a_pending_application(landing, tmp_path):
    db = tmp_path / "work"
    write_export(landing, D.format("2022-06-30"), DECISION_HEADER, [decision("H1", "1.6.2022"), decision("H2", "1.1.2022", "11.1.2022")])
    con = build_working(landing, db)
    assert con.execute("SELECT sum(n) FROM kpi.backlog").fetchall()[0][0] == 1
    con.close()
    write_export(landing, D.format("2022-12-31"), DECISION_HEADER, [decision("H1", "1.6.2022", "21.6.2022")])
    con = build_working(landing, db)
    assert con.execute("SELECT count(*) FROM kpi.backlog").fetchall()[0][0] == 0
    row = quality_row(con, PROCESSING_TIME, "1-12/2022")
    assert (row["n"], row["value"]) == (2, 15.0)


def test_rejected_row_does_not_override_an_earlier_valid_row(landing, tmp_path):
    write_export(landing, D.format("2022-06-30"), DECISION_HEADER, [
        decision("H1", "1.1.2022", "11.1.2022"), decision("H2", "1.1.2022", "21.1.2022"), decision("H3", "1.1.2022", "2.1.2022"),
    ])
    write_export(landing, D.format("2022-12-31"), DECISION_HEADER, [
        decision("H1", "1.1.2022", "31.2.2022"),  # impossible date: rejected
        decision("H2", "1.1.2022", "31.1.2022"),  # valid correction: 30 days
        decision("H3", "1.1.2022", "2.1.2022"),
    ])
    con = build_working(landing, tmp_path / "work")
    days = dict(con.execute("SELECT hakemus_id, kasittelyaika_pv FROM core.decisions").fetchall())
    assert days == {"H1": 10, "H2": 30, "H3": 1}
    assert con.execute("SELECT file_name, line, column_name, rule FROM quality.quarantine").fetchall() == [
        (D.format("2022-12-31"), 2, "paatetty", "date_format")
    ]


def test_periods_after_the_newest_extract_are_incomplete(landing, tmp_path):
    write_export(landing, D.format("2022-12-31"), DECISION_HEADER, [decision("H1", "1.1.2022", "11.1.2022")])
    write_export(landing, D.format("2023-03-31"), DECISION_HEADER, [decision("H2", "1.2.2023", "21.2.2023")])
    con = build_working(landing, tmp_path / "work")
    rows = con.execute(
        "SELECT period_label, complete, target FROM kpi.quality_section WHERE indicator = ? ORDER BY period_start, period_end",
        [PROCESSING_TIME],
    ).fetchall()
    assert rows == [("1-6/2022", True, 30.0), ("1-12/2022", True, 30.0), ("1-6/2023", False, None), ("1-12/2023", False, None)]
    assert quality_row(con, PROCESSING_TIME, "1-6/2023")["met"] is None


def test_small_satisfaction_cells_are_suppressed(landing, tmp_path):
    rows = [response(f"V{i}", "1.3.2022", "5", tukimuoto="esr") for i in range(5)]
    rows += [response(f"W{i}", "1.3.2022", "2", tukimuoto="eakr") for i in range(4)]
    write_export(landing, F.format("2022-12-31"), FEEDBACK_HEADER, rows)
    con = build_working(landing, tmp_path / "work")
    cells = {r[0]: r[1:] for r in con.execute("SELECT tukimuoto, n, mean_score, suppressed FROM kpi.satisfaction_monthly").fetchall()}
    assert cells == {"esr": (5, 5.0, False), "eakr": (4, None, True), None: (9, pytest.approx(33 / 9), False)}
    yearly = {r[0]: r[1:] for r in con.execute("SELECT tukimuoto, n, suppressed FROM kpi.satisfaction_by_instrument").fetchall()}
    assert yearly == {"esr": (5, False), "eakr": (4, True)}


def test_processing_time_breakdown(landing, tmp_path):
    write_export(landing, D.format("2022-12-31"), DECISION_HEADER, [
        decision("H1", "1.1.2022", "11.1.2022"), decision("H2", "1.1.2022", "31.1.2022"), decision("H3", "1.1.2022", "10.2.2022"),
    ])
    con = build_working(landing, tmp_path / "work")
    months = con.sql("SELECT * FROM kpi.processing_time_monthly WHERE tukimuoto IS NULL AND yksikko IS NULL").pl()
    jan, feb = months.rows(named=True)
    assert (jan["n"], jan["mean_days"], jan["median_days"], jan["share_within_30_days"]) == (2, 20.0, 20.0, 1.0)
    assert (feb["n"], feb["share_within_30_days"]) == (1, 0.0)
    # one instrument and one office: each roll-up level repeats the same figures
    assert con.execute("SELECT count(*) FROM kpi.processing_time_monthly").fetchall()[0][0] == 8
    histogram = con.execute("SELECT days_from, n FROM kpi.processing_time_distribution").fetchall()
    assert histogram == [(10, 1), (30, 1), (40, 1)]


def test_processing_time_quantiles_equal_duckdbs_own(landing, tmp_path):
    """Median and 90th percentile come from day counts per cell; they must equal
    quantile_cont over the decisions themselves, in every cell and roll-up."""
    rows = []
    for i in range(60):
        received = dt.date(2022, 1 + i % 3, 1 + i % 7)
        decided = received + dt.timedelta(days=(i * 37) % 53 + (i % 4) * 11)
        rows.append(decision(f"H{i}", f"{received.day}.{received.month}.2022", f"{decided.day}.{decided.month}.2022",
                             tukimuoto=("esr", "eakr", "muu")[i % 3], yksikko=("ELY-UUS", "TE-PIR")[i % 2]))
    write_export(landing, D.format("2022-12-31"), DECISION_HEADER, rows)
    con = build_working(landing, tmp_path / "work")
    expected = con.execute(
        """
        SELECT date_trunc('month', paatetty)::DATE, tukimuoto, yksikko, count(*),
               quantile_cont(kasittelyaika_pv, 0.5), quantile_cont(kasittelyaika_pv, 0.9), avg(kasittelyaika_pv)
        FROM core.decisions WHERE paatetty IS NOT NULL
        GROUP BY GROUPING SETS ((1, 2, 3), (1, 2), (1, 3), (1)) ORDER BY ALL
        """
    ).fetchall()
    got = con.execute(
        "SELECT month, tukimuoto, yksikko, n, median_days, p90_days, mean_days FROM kpi.processing_time_monthly ORDER BY ALL"
    ).fetchall()
    assert len(got) == len(expected) > 20
    for mine, theirs in zip(got, expected):
        assert mine[:4] == theirs[:4]
        assert mine[4:] == pytest.approx(theirs[4:])
