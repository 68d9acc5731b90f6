"""Why a figure changed (keha_maksatus.history.changes, history.changes, `keha-maksatus
explain`) on real small export files: the parts sum exactly to the change of the
quality-section value that fresh runs on the two sets of files compute."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from keha_maksatus import kpi, warehouse
from keha_maksatus.config import PROCESSING_TIME, SATISFACTION, load_settings
from keha_maksatus.history import changes, publications, versions
from keha_maksatus.ingest.store import ingest_landing
from keha_maksatus.outputs.publish import publish
from keha_maksatus.outputs.report import NO_CHANGES_FI, Paragraph, Table
from keha_maksatus.warehouse import working_path
from pipelines.cli import main as cli_main

from conftest import DECISION_HEADER, FEEDBACK_HEADER, TEST_KEY, build_working, decision, response, write_export
from test_report_changes import published_on, section

TOLERANCE = 1e-9
# Extract dates: 1-6/2022 closes with the second, 1-12/2022 with the last.
EXTRACT_DATES = (dt.date(2022, 4, 30), dt.date(2022, 6, 30), dt.date(2022, 8, 31), dt.date(2022, 12, 31), dt.date(2023, 2, 28))
APPLICATIONS = [f"A{i}" for i in range(1, 7)]
RESPONSES = [f"V{i}" for i in range(1, 7)]


def fi(day: dt.date) -> str:
    return f"{day.day}.{day.month}.{day.year}"


# --- generated histories ------------------------------------------------------------------

# What an extract says of one application: absent, pending, decided (days after receipt),
# or a row that is rejected (decided before it arrived); received some days into 2021-2022.
decision_rows = st.one_of(
    st.none(),
    st.tuples(st.just("pending"), st.integers(0, 600)),
    st.tuples(st.just("decided"), st.integers(0, 600), st.integers(0, 120)),
    st.tuples(st.just("rejected"), st.integers(0, 600)),
)
# Of one response: absent, a score, EOS, a campaign score, or a rejected score (7).
response_rows = st.one_of(
    st.none(),
    st.tuples(st.sampled_from(["score", "eos", "campaign", "rejected"]), st.integers(0, 700), st.integers(1, 5)),
)
extracts = st.lists(
    st.tuples(st.lists(decision_rows, min_size=len(APPLICATIONS), max_size=len(APPLICATIONS)),
              st.lists(response_rows, min_size=len(RESPONSES), max_size=len(RESPONSES))),
    min_size=2, max_size=len(EXTRACT_DATES),
)


def decision_line(hakemus_id: str, row: tuple, extract: dt.date) -> str | None:
    if row is None:
        return None
    start = dt.date(2021, 6, 1)
    received = min(start + dt.timedelta(days=row[1]), extract)
    if row[0] == "pending":
        return decision(hakemus_id, fi(received))
    if row[0] == "rejected":
        return decision(hakemus_id, fi(received), fi(received - dt.timedelta(days=3)))
    return decision(hakemus_id, fi(received), fi(min(received + dt.timedelta(days=row[2]), extract)))


def response_line(vastaus_id: str, row: tuple, extract: dt.date) -> str | None:
    if row is None:
        return None
    kind, offset, score = row
    answered = fi(min(dt.date(2021, 6, 1) + dt.timedelta(days=offset), extract))
    if kind == "eos":
        return response(vastaus_id, answered, "EOS")
    if kind == "campaign":
        return response(vastaus_id, answered, str(score), kysely="kampanja")
    return response(vastaus_id, answered, "7" if kind == "rejected" else str(score))


def write_history(landing: Path, history: list) -> list[dt.date]:
    """One decisions and one feedback extract per step (those with any row); their dates."""
    dates = list(EXTRACT_DATES[: len(history)])
    for day, (decided, answered) in zip(dates, history):
        lines = [decision_line(i, row, day) for i, row in zip(APPLICATIONS, decided)]
        if any(lines):
            write_export(landing, f"maksatuspaatokset_{day.isoformat()}.csv", DECISION_HEADER, [x for x in lines if x])
        lines = [response_line(i, row, day) for i, row in zip(RESPONSES, answered)]
        if any(lines):
            write_export(landing, f"asiakaspalaute_{day.isoformat()}.csv", FEEDBACK_HEADER, [x for x in lines if x])
    return dates


def fresh_quality_section(landing: Path, work: Path, upto: dt.date) -> dict[tuple[str, str], dict]:
    """kpi.quality_section of a fresh run on a landing folder holding only the files
    dated up to `upto` (the library pipeline: ingest, KPIs)."""
    subset = work / "landing"
    subset.mkdir(parents=True)
    for path in landing.iterdir():
        if dt.date.fromisoformat(path.stem.split("_")[1]) <= upto:
            shutil.copy(path, subset / path.name)
    con = warehouse.connect(work / "state")
    try:
        ingest_landing(con, subset, TEST_KEY, load_settings())
        kpi.build_kpis(con, load_settings())
        rows = con.sql("SELECT indicator, period_label, complete, value, n FROM kpi.quality_section").pl().to_dicts()
    finally:
        con.close()
    return {(r["indicator"], r["period_label"]): r for r in rows}


@settings(max_examples=25, deadline=None, report_multiple_bugs=False, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(history=extracts, points=st.tuples(st.integers(0, len(EXTRACT_DATES) - 1), st.integers(0, len(EXTRACT_DATES) - 1)),
       late=st.one_of(st.none(), st.integers(0, 2 * len(EXTRACT_DATES) - 1)))
def test_parts_sum_exactly_to_the_change_of_the_quality_section(tmp_path_factory, history, points, late):
    """Any two points of a generated history of extracts (new applications and responses,
    decisions, corrected dates and scores, decisions reversed, rejected rows), one extract
    perhaps arriving only after later ones."""
    base = tmp_path_factory.mktemp("history")
    landing = base / "landing"
    landing.mkdir()
    dates = write_history(landing, history)
    start, end = (dates[min(p, len(dates) - 1)] for p in points)
    held = sorted(landing.iterdir())[late] if late is not None and late < len(list(landing.iterdir())) else None
    con = warehouse.connect(base / "all")
    try:
        if held is not None:  # an older extract that arrives late takes its place in file-name order
            held.rename(base / held.name)
            ingest_landing(con, landing, TEST_KEY, load_settings())
            (base / held.name).rename(held)
        ingest_landing(con, landing, TEST_KEY, load_settings())
        found = changes.changes_between(con, versions.files_as_of(con, start), versions.files_as_of(con, end))
    finally:
        con.close()
    for part in found["part"].unique():
        event(part)
    before = fresh_quality_section(landing, base / "before", start)
    after = fresh_quality_section(landing, base / "after", end)

    empty = {"value": None, "n": 0}
    for key in before.keys() | after.keys():
        old, new = before.get(key, empty), after.get(key, empty)
        rows = found.filter((pl.col("indicator") == key[0]) & (pl.col("period_label") == key[1]))
        if rows.is_empty():  # nothing counted differs: the figure is the same
            assert (old["value"], old["n"]) == (new["value"], new["n"]) or old["n"] == new["n"] == 0, key
            continue
        [(value_from, value_to, n_from, n_to, complete)] = rows.select(
            "value_from", "value_to", "n_from", "n_to", "complete").unique().rows()
        assert (n_from, n_to) == (old["n"], new["n"]), key
        assert value_from == pytest.approx(old["value"], abs=TOLERANCE) if old["value"] is not None else value_from is None
        assert value_to == pytest.approx(new["value"], abs=TOLERANCE) if new["value"] is not None else value_to is None
        if key in after:
            assert complete == after[key]["complete"], key
        assert rows["items"].min() > 0 and changes.QUARANTINED_PART not in rows["part"]
        if old["n"] and new["n"]:
            assert abs(rows["contribution"].sum() - (new["value"] - old["value"])) < TOLERANCE, key
        else:  # a mean undefined on one side: no decomposition
            assert rows["contribution"].null_count() == rows.height
    # Rows newly rejected: once per indicator and extract of the to-side only, under no period, moving nothing.
    rejected = found.filter(pl.col("part") == changes.QUARANTINED_PART)
    assert rejected.select("indicator", "file_id").is_unique().all() and rejected["period_label"].null_count() == rejected.height
    assert rejected["contribution"].to_list() == [0.0] * rejected.height and (rejected["items"] > 0).all()
    if start == end:
        assert found.is_empty()


# --- history.changes and `keha-maksatus explain` on two publishes -------------------------


def first_extracts(landing: Path) -> None:
    """Extracts of 30.6.2022 (1-6/2022 closes): A1 10 days, A2 30 days, A3 pending; five
    official scores (mean 3,8)."""
    write_export(landing, "maksatuspaatokset_2022-06-30.csv", DECISION_HEADER, [
        decision("A1", "1.2.2022", "11.2.2022"),
        decision("A2", "1.3.2022", "31.3.2022"),
        decision("A3", "1.5.2022"),
    ])
    write_export(landing, "asiakaspalaute_2022-06-30.csv", FEEDBACK_HEADER, [
        response("V1", "2.3.2022", "5"), response("V2", "3.3.2022", "4", kysely="jalkikysely"),
        response("V3", "4.4.2022", "3"), response("V4", "8.5.2022", "2"), response("V5", "9.5.2022", "5"),
    ])


def late_correction(landing: Path) -> None:
    """Extracts of 31.8.2022: A2 was decided on 11.3. (10 days, not 30); a response of
    10.6. (score 1) arrives late; one row is rejected (decided before it arrived)."""
    write_export(landing, "maksatuspaatokset_2022-08-31.csv", DECISION_HEADER, [
        decision("A2", "1.3.2022", "11.3.2022"),
        decision("A4", "1.7.2022", "1.6.2022"),
        decision("A5", "1.7.2022"),
    ])
    write_export(landing, "asiakaspalaute_2022-08-31.csv", FEEDBACK_HEADER, [response("V6", "10.6.2022", "1")])


def build_and_publish(landing: Path, base: Path, run_id: str | None = None) -> Path:
    con = build_working(landing, base / "work")
    try:
        return publish(con, working_path(base / "work"), base / "pub" / "maksatus.duckdb", run_id=run_id)
    finally:
        con.close()


def history_changes(path: Path) -> pl.DataFrame:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.sql("SELECT * FROM history.changes ORDER BY to_publication_no, indicator, period_label, part").pl()
    finally:
        con.close()


@pytest.fixture
def two_publishes(tmp_path) -> Path:
    landing = tmp_path / "landing"
    first_extracts(landing)
    published = build_and_publish(landing, tmp_path, run_id="run-one")
    assert history_changes(published).is_empty()  # nothing to compare the first publish with
    late_correction(landing)
    build_and_publish(landing, tmp_path, run_id="run-two")
    return published


def test_a_late_correction_in_a_closed_period_names_the_correcting_file(two_publishes, tmp_path):
    found = history_changes(two_publishes)
    closed = found.filter((pl.col("indicator") == PROCESSING_TIME) & (pl.col("period_label") == "1-6/2022"))
    # 1-6/2022 closed with the first extracts: (10 + 30) / 2, then (10 + 10) / 2.
    assert closed.select(
        "from_publication_no", "to_publication_no", "complete", "value_from", "value_to", "n_from", "n_to",
        "part", "file_name", "items", "contribution",
    ).to_dicts() == [{
        "from_publication_no": 1, "to_publication_no": 2, "complete": True, "value_from": 20.0, "value_to": 10.0,
        "n_from": 2, "n_to": 2, "part": "days_corrected", "file_name": "maksatuspaatokset_2022-08-31.csv",
        "items": 1, "contribution": -10.0,
    }]
    # The rejected row of the correcting extract (a new application, A4) is named once, under
    # no period (1-12/2022 moved too), moving nothing.
    [rejected] = found.filter(pl.col("part") == changes.QUARANTINED_PART).to_dicts()
    assert {k: rejected[k] for k in ("indicator", "period_label", "complete", "value_from", "n_to", "file_name", "items",
                                     "contribution")} == {
        "indicator": PROCESSING_TIME, "period_label": None, "complete": None, "value_from": None, "n_to": None,
        "file_name": "maksatuspaatokset_2022-08-31.csv", "items": 1, "contribution": 0.0}
    assert found.filter(pl.col("period_label") == "1-12/2022").height > 0
    kept, found = found, found.filter(pl.col("part") != changes.QUARANTINED_PART)
    log = dict(duckdb.connect(str(two_publishes), read_only=True).sql(
        "SELECT file_name, file_id FROM quality.ingest_log").fetchall())
    assert set(found["file_id"].drop_nulls()) <= set(log.values())
    assert all(log[name] == file_id for name, file_id in found.select("file_name", "file_id").rows())
    # The late response moves 1-6/2022 satisfaction: (19 + 1) / 6 from 19 / 5, a new response.
    late = found.filter((pl.col("indicator") == SATISFACTION) & (pl.col("period_label") == "1-6/2022"))
    assert late.select("part", "file_name", "items").rows() == [("new_responses", "asiakaspalaute_2022-08-31.csv", 1)]
    assert late["contribution"][0] == pytest.approx(20 / 6 - 19 / 5, abs=TOLERANCE)
    # Every period kept moved, and its parts sum to the move.
    for (_, _, _), rows in found.group_by("indicator", "period_label", "to_publication_no"):
        assert rows["n_from"][0] != rows["n_to"][0] or rows["value_from"][0] != rows["value_to"][0]
        assert abs(rows["contribution"].sum() - (rows["value_to"][0] - rows["value_from"][0])) < TOLERANCE

    # A third publish on the same files adds no rows; the working file keeps what the published one has.
    build_and_publish(tmp_path / "landing", tmp_path)
    assert history_changes(two_publishes).equals(kept)
    assert history_changes(working_path(tmp_path / "work")).equals(kept)


def test_the_publish_records_the_kpi_steps_comparison_only_for_the_same_files(tmp_path):
    """The KPI step's comparison is kept in the working file for the publish to record; a
    file ingested in between makes the publish compare again, and neither file keeps it."""
    landing = tmp_path / "landing"
    first_extracts(landing)
    published = build_and_publish(landing, tmp_path)
    late_correction(landing)
    feedback = landing / "asiakaspalaute_2022-08-31.csv"
    held_back = feedback.read_bytes()
    feedback.unlink()
    con = build_working(landing, tmp_path / "work")
    try:
        before_feedback = publications.changes_since_last_publication(con, published)
        assert set(before_feedback["file_name"].drop_nulls()) == {"maksatuspaatokset_2022-08-31.csv"}
        # Asked again on the same files: the kept rows, not a new comparison.
        assert publications.changes_since_last_publication(con, published).equals(before_feedback)
        feedback.write_bytes(held_back)
        ingest_landing(con, landing, TEST_KEY, load_settings())
        publish(con, working_path(tmp_path / "work"), published)
    finally:
        con.close()
    recorded = history_changes(published)
    assert "asiakaspalaute_2022-08-31.csv" in set(recorded["file_name"].drop_nulls())
    for path in (published, working_path(tmp_path / "work")):
        reader = duckdb.connect(str(path), read_only=True)
        tables = {t for (t,) in reader.execute("SELECT schema_name || '.' || table_name FROM duckdb_tables()").fetchall()}
        reader.close()
        assert not {publications.PENDING_CHANGES, publications.PENDING_CHANGES_OF} & tables, path


def test_the_first_publish_after_an_earlier_versions_publication_records_no_changes(tmp_path):
    """An earlier version kept one meta.publication row with no file list: what it rested
    on is not known, which is not nothing, so no change is recorded or reported."""
    landing = tmp_path / "landing"
    first_extracts(landing)
    published = build_and_publish(landing, tmp_path)
    # An earlier version had a one-row meta.publication and no history, in the working and the published file.
    for path in (working_path(tmp_path / "work"), published):
        con = duckdb.connect(str(path))
        try:
            con.execute("DROP SCHEMA history CASCADE")
            con.execute("CREATE TABLE meta.publication_old AS SELECT published_at, run_id, as_of, decisions, responses "
                        "FROM meta.publication")
            con.execute("DROP TABLE meta.publication; ALTER TABLE meta.publication_old RENAME TO publication")
            for kind in ("decisions", "feedback"):
                con.execute(f"ALTER TABLE core.{kind} DROP COLUMN valid_from_file_id; ALTER TABLE core.{kind} DROP COLUMN valid_from_line")
        finally:
            con.close()
    late_correction(landing)
    con = build_working(landing, tmp_path / "work")
    try:
        assert publications.last_publication_files(con, published) is None
        assert publications.changes_since_last_publication(con, published).is_empty()
        publish(con, working_path(tmp_path / "work"), published)
    finally:
        con.close()
    assert history_changes(published).is_empty()
    assert [b.text for b in section(published)] == [NO_CHANGES_FI.format(date=published_on(published, 1))]


def test_rows_newly_rejected_are_told_once_and_withhold_nothing(tmp_path, capsys):
    """A feedback extract brings five responses of 1-6/2022 and one rejected row: the
    rejected row is told once (no period), and the part of five responses is shown in
    explain (disclosure's rule) and in the report."""
    landing = tmp_path / "landing"
    first_extracts(landing)
    published = build_and_publish(landing, tmp_path)
    rejected_file = "asiakaspalaute_2022-08-31.csv"
    write_export(landing, rejected_file, FEEDBACK_HEADER, [
        *[response(f"W{i}", f"{i + 1}.6.2022", "5") for i in range(5)], response("W9", "1.10.2022", "7"),
    ])
    build_and_publish(landing, tmp_path)

    found = history_changes(published)
    [rejected] = found.filter(pl.col("part") == changes.QUARANTINED_PART).to_dicts()
    assert (rejected["indicator"], rejected["period_label"], rejected["file_name"], rejected["items"], rejected["contribution"]) == (
        SATISFACTION, None, rejected_file, 1, 0.0)
    # The five new responses are 1-6/2022's and 1-12/2022's part; the rejected row is in neither.
    for period in ("1-6/2022", "1-12/2022"):
        rows = found.filter((pl.col("indicator") == SATISFACTION) & (pl.col("period_label") == period))
        assert rows.select("part", "items").rows() == [("new_responses", 5)], period

    code, out, err = explain(capsys, "1-6/2022", "--warehouse", str(published), "--indicator", "satisfaction")
    assert code == 0, err
    # (19 + 25) / 10 from 19 / 5: a part of five responses is shown; the rejected row withholds nothing.
    assert "value: 3.80 (n 5) -> 4.40 (n 10), change +0.6000" in out and "Contributions withheld" not in out
    assert "+0.6000  = the change +0.6000" in out
    [told] = [line for line in out.splitlines() if "newly rejected" in line]
    assert f"1 in {rejected_file}" in told
    blocks = section(published)
    sentences = [b.text for b in blocks if isinstance(b, Paragraph)]
    [parts] = [b for b in blocks if isinstance(b, Table)]
    assert [row[-1] for row in parts.rows if row[1] == "1-6/2022"] == ["+0,600"]  # shown, to three decimals
    assert [s for s in sentences if rejected_file in s] == [
        f"Uusissa poiminnoissa hylättyjä rivejä (karanteeni): {rejected_file} 1 rivi. "
        "Hylätty rivi ei muuta lukuja: rivin aiempi versio jää voimaan."]


def test_no_change_between_the_same_files_and_none_before_the_first_publish(tmp_path):
    landing = tmp_path / "landing"
    first_extracts(landing)
    con = build_working(landing, tmp_path / "work")
    try:
        assert publications.changes_since_last_publication(con, tmp_path / "pub" / "maksatus.duckdb").is_empty()
        files = versions.files_as_of(con, dt.date(2022, 6, 30))
        assert changes.changes_between(con, files, list(reversed(files))).is_empty()
        # From nothing at all: every item is new and no mean exists to decompose against.
        found = changes.changes_between(con, [], files)
        assert set(found["part"]) == {"new_applications", "new_responses"}
        assert found["contribution"].null_count() == found.height and found["value_from"].null_count() == found.height
        with pytest.raises(Exception, match="unknown reporting period '1-7/2022'"):
            changes.changes_between(con, [], files, ["1-7/2022"])
    finally:
        con.close()


def explain(capsys, *args: str) -> tuple[int, str, str]:
    code = cli_main(["explain", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_explain_prints_the_parts_their_sum_and_the_movers(two_publishes, capsys):
    code, out, err = explain(capsys, "1-6/2022", "--warehouse", str(two_publishes))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("1-6/2022: julkaisu 1 (") and " -> julkaisu 2 (" in lines[0]
    processing = out.split(f"({SATISFACTION})")[0]
    assert f"({PROCESSING_TIME}), 1-6/2022 (closed)" in processing
    assert "value: 20.0 (n 2) -> 10.0 (n 2), change -10.0000" in processing
    [part] = [line for line in processing.splitlines() if changes.PART_LABELS_FI["days_corrected"] in line and "file" in line]
    assert part.split()[-3:] == ["maksatuspaatokset_2022-08-31.csv", "(file", part.split()[-1]] and "-10.0000" in part
    assert "sum of the parts" in processing and "-10.0000  = the change -10.0000" in processing
    [mover] = [line for line in processing.splitlines() if line.strip().startswith("A2 ")]
    assert "30 -> 10 d" in mover and "-10.0000" in mover
    # Satisfaction: n 5 -> 6, but the part rests on one response: its contribution is withheld.
    satisfaction = out.split(f"({SATISFACTION})")[1]
    assert "value: 3.80 (n 5) -> 3.33 (n 6)" in satisfaction and "Contributions withheld" in satisfaction
    assert "V6" not in out and "sum of the parts" not in satisfaction

    # The same between dates, for processing time alone; a date before the change, no change.
    code, by_date, _ = explain(capsys, "1-6/2022", "--warehouse", str(two_publishes), "--from", "30.6.2022",
                               "--to", "2022-08-31", "--indicator", "processing")
    assert code == 0 and by_date.splitlines()[0] == "1-6/2022: 30.06.2022 -> 31.08.2022"
    assert by_date.splitlines()[1:] == processing.splitlines()[1:len(by_date.splitlines())]
    code, same, _ = explain(capsys, "1-6/2022", "--warehouse", str(two_publishes), "--from", "run-one", "--to", "1")
    assert code == 0 and "No change: both points rest on the same ingested files." in same
    code, other, _ = explain(capsys, "1-6/2021", "--warehouse", str(two_publishes), "--indicator", "processing")
    assert code == 0 and "No change: no application or response" in other


@pytest.mark.parametrize("args, message", [
    (["1-7/2022"], "unknown reporting period '1-7/2022'"),
    (["1-6/2022", "--from", "no-such-run"], "'no-such-run' is neither a date"),
    (["1-6/2022", "--from", "2021-12-31"], "no extract is dated on or before 31.12.2021"),
    (["1-6/2022", "--to", "2022-08-31"], "--to 2022-08-31 is no publication"),
    (["1-6/2022", "--warehouse", "missing.duckdb"], "no published warehouse at"),
])
def test_explain_bad_input_is_one_line_and_exit_2(two_publishes, capsys, args, message):
    if "--warehouse" not in args:
        args = [*args, "--warehouse", str(two_publishes)]
    else:
        args = [a if a != "missing.duckdb" else str(two_publishes.parent / a) for a in args]
    code, out, err = explain(capsys, *args)
    assert code == 2 and out == ""
    assert err.startswith(f"error: ") and message in err and len(err.strip().splitlines()) == 1
