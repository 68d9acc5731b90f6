"""Row history (keha_maksatus/history/versions.py) on real extracts: every version kept
once, the current state as before, and the state as of any set of files equal to what
those files alone give, whatever order the extracts arrive in."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keha_maksatus import warehouse
from keha_maksatus.config import load_settings
from keha_maksatus.history import versions
from keha_maksatus.ingest.store import ingest_landing

from conftest import DECISION_HEADER, FEEDBACK_HEADER, TEST_KEY, decision, response, write_export

IDS = ("A1", "A2", "A3", "A4")
# What an application can look like in an extract (saapunut, paatetty): pending, decided, corrected.
STATES = (("3.1.2022", ""), ("3.1.2022", "20.1.2022"), ("3.1.2022", "25.1.2022"), ("1.1.2022", "20.1.2022"))
SCORES = ("3", "4", "5", "EOS")
EXTRACT_DATES = tuple(dt.date(2022, 1, 31) + dt.timedelta(days=7 * k) for k in range(6))

extract = st.fixed_dictionaries({
    "decisions": st.dictionaries(st.sampled_from(IDS), st.sampled_from(STATES), max_size=len(IDS)),
    "feedback": st.dictionaries(st.sampled_from(("V1", "V2", "V3")), st.sampled_from(SCORES), max_size=3),
})


def write_extract(folder: Path, k: int, content: dict) -> list[Path]:
    """Extract k: its applications and responses, and one row of its own (no two extracts share their bytes)."""
    day = EXTRACT_DATES[k]
    decisions = [decision(i, saapunut, paatetty) for i, (saapunut, paatetty) in sorted(content["decisions"].items())]
    feedback = [response(v, "10.1.2022", score) for v, score in sorted(content["feedback"].items())]
    return [
        write_export(folder, f"maksatuspaatokset_{day}.csv", DECISION_HEADER, [*decisions, decision(f"Z{k}", "2.1.2022")]),
        write_export(folder, f"asiakaspalaute_{day}.csv", FEEDBACK_HEADER, [*feedback, response(f"Z{k}", "2.1.2022", "4")]),
    ]


def ingest_one_by_one(files: list[Path], landing: Path, work: Path) -> duckdb.DuckDBPyConnection:
    """Land the files one at a time in the given order, ingesting after each."""
    con = warehouse.connect(work)
    for path in files:
        landing.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, landing / path.name)
        ingest_landing(con, landing, TEST_KEY, load_settings())
    return con


def expected_state(extracts: list[dict], upto: int) -> dict:
    """What extracts 0..upto alone say: each id as in the latest extract that sends it."""
    state = {}
    for k in range(upto + 1):
        for i, (saapunut, paatetty) in extracts[k]["decisions"].items():
            state[("decisions", i)] = (saapunut, paatetty)
        for v, score in extracts[k]["feedback"].items():
            state[("feedback", v)] = score
        state[("decisions", f"Z{k}")] = ("2.1.2022", "")
        state[("feedback", f"Z{k}")] = "4"
    return state


def observed_state(con: duckdb.DuckDBPyConnection, decisions_sql: str, feedback_sql: str) -> dict:
    state = {}
    for i, saapunut, paatetty in con.execute(f"SELECT hakemus_id, saapunut, paatetty FROM ({decisions_sql})").fetchall():
        state[("decisions", i)] = (f"{saapunut.day}.{saapunut.month}.{saapunut.year}",
                                   f"{paatetty.day}.{paatetty.month}.{paatetty.year}" if paatetty else "")
    for v, score in con.execute(f"SELECT vastaus_id, arvosana FROM ({feedback_sql})").fetchall():
        state[("feedback", v)] = "EOS" if score is None else str(score)
    return state


def chain_changes(extracts: list[dict]) -> int:
    """Versions the extracts make when they arrive in order: one per id and per change of its content."""
    count, last = 0, {}
    for k, content in enumerate(extracts):
        rows = {**{("d", i): s for i, s in content["decisions"].items()}, **{("f", v): s for v, s in content["feedback"].items()},
                ("d", f"Z{k}"): "z", ("f", f"Z{k}"): "z"}
        for key, value in rows.items():
            count += last.get(key) != value
            last[key] = value
    return count


def file_ids(con: duckdb.DuckDBPyConnection, upto: dt.date) -> None:
    con.execute("CREATE OR REPLACE TEMP TABLE chosen_files AS SELECT unnest(?::INTEGER[]) AS file_id",
                [versions.files_as_of(con, upto)])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(extracts=st.lists(extract, min_size=2, max_size=5), data=st.data())
def test_any_arrival_order_gives_the_state_of_each_prefix_of_extracts(tmp_path_factory, extracts, data):
    root = tmp_path_factory.mktemp("versions")
    files = [path for k, content in enumerate(extracts) for path in write_extract(root / "all", k, content)]
    arrival = data.draw(st.permutations(files), label="arrival order")
    con = ingest_one_by_one(arrival, root / "landing", root / "work")
    try:
        # The current state: each id as the latest extract (by date in the name) sends it, late arrivals or not.
        assert observed_state(con, "SELECT * FROM core.decisions", "SELECT * FROM core.feedback") == expected_state(extracts, len(extracts) - 1)
        # Any past state: what the extracts dated up to then alone give.
        for k, day in enumerate(EXTRACT_DATES[: len(extracts)]):
            file_ids(con, day)
            state = observed_state(con, versions.state_sql("decisions", "chosen_files"), versions.state_sql("feedback", "chosen_files"))
            assert state == expected_state(extracts, k), f"as of extract {k}"
        # Each id's versions form one chain: each replaced by the next one's extract, the last one current.
        for kind, id_column in versions.ID_COLUMNS.items():
            broken = con.execute(
                f"""
                SELECT {id_column} FROM (
                    SELECT v.{id_column}, v.replaced_by_file_id,
                           lead(v.valid_from_file_id) OVER (PARTITION BY v.{id_column} ORDER BY l.name_order, v.valid_from_file_id) AS next
                    FROM history.{kind} v JOIN quality.ingest_log l ON l.file_id = v.valid_from_file_id
                ) WHERE replaced_by_file_id IS DISTINCT FROM next
                """
            ).fetchall()
            assert broken == []
        if arrival == files:
            # In order, a row sent again unchanged is no new version: one per change.
            stored = con.execute("SELECT (SELECT count(*) FROM history.decisions) + (SELECT count(*) FROM history.feedback)").fetchall()[0][0]
            assert stored == chain_changes(extracts)
    finally:
        con.close()


def test_a_row_sent_again_unchanged_keeps_its_version_and_names_the_newest_extract(tmp_path):
    landing = tmp_path / "landing"
    write_export(landing, "maksatuspaatokset_2022-01-31.csv", DECISION_HEADER, [decision("A1", "3.1.2022"), decision("A2", "3.1.2022")])
    con = ingest_one_by_one([], landing, tmp_path / "work")
    try:
        ingest_landing(con, landing, TEST_KEY, load_settings())
        write_export(landing, "maksatuspaatokset_2022-02-28.csv", DECISION_HEADER,
                     [decision("A2", "3.1.2022", "20.1.2022"), decision("A1", "3.1.2022")])
        ingest_landing(con, landing, TEST_KEY, load_settings())
        rows = con.execute(
            "SELECT hakemus_id, file_name, line, valid_from_file_id, valid_from_line, replaced_by_file_id "
            "FROM history.decisions ORDER BY hakemus_id, valid_from_file_id"
        ).fetchall()
    finally:
        con.close()
    assert rows == [
        ("A1", "maksatuspaatokset_2022-02-28.csv", 3, 1, 2, None),  # unchanged: first brought by file 1, line 2
        ("A2", "maksatuspaatokset_2022-01-31.csv", 3, 1, 3, 2),     # pending, replaced by file 2
        ("A2", "maksatuspaatokset_2022-02-28.csv", 2, 2, 2, None),  # decided
    ]


def test_an_older_extract_arriving_late_between_two_sightings_of_a_row(tmp_path):
    """A1 pending on 31.1. and 14.2., decided in the extract of 7.2. that arrives last:
    now A1 is pending again from 14.2., and as of 7.2. it was decided."""
    extracts = [
        {"decisions": {"A1": STATES[0]}, "feedback": {"V1": "4"}},
        {"decisions": {"A1": STATES[1]}, "feedback": {"V1": "5"}},
        {"decisions": {"A1": STATES[0]}, "feedback": {"V1": "4"}},
    ]
    files = [path for k, content in enumerate(extracts) for path in write_extract(tmp_path / "all", k, content)]
    con = ingest_one_by_one(files[:2] + files[4:] + files[2:4], tmp_path / "landing", tmp_path / "work")
    try:
        assert observed_state(con, "SELECT * FROM core.decisions", "SELECT * FROM core.feedback") == expected_state(extracts, 2)
        for k in range(3):
            file_ids(con, EXTRACT_DATES[k])
            state = observed_state(con, versions.state_sql("decisions", "chosen_files"), versions.state_sql("feedback", "chosen_files"))
            assert state == expected_state(extracts, k)
        chain = con.execute(
            "SELECT valid_from_file_id, replaced_by_file_id, paatetty IS NOT NULL FROM history.decisions "
            "WHERE hakemus_id = 'A1' ORDER BY valid_from_line, valid_from_file_id"
        ).fetchall()
    finally:
        con.close()
    # Files: 1-2 the first extract, 3-4 the third, 5-6 the second (late): pending, decided, pending again.
    assert sorted(chain, key=lambda v: [1, 5, 3].index(v[0])) == [(1, 5, False), (5, 3, True), (3, None, False)]


def test_the_docs_queries_of_versions_and_of_a_past_state_on_the_sample(sample_warehouse):
    from test_example_queries import example_queries

    queries = dict(example_queries())
    [past] = [sql for question, sql in queries.items() if question.startswith("How many applications were pending and decided")]
    [every] = [sql for question, sql in queries.items() if question.startswith("Every version of an application")]
    con = duckdb.connect(str(sample_warehouse), read_only=True)
    try:
        for day in (dt.date(2021, 12, 31), dt.date(2022, 6, 30), dt.date(2022, 10, 31)):
            con.execute("CREATE OR REPLACE TEMP TABLE chosen_files AS SELECT unnest(?::INTEGER[]) AS file_id", [versions.files_as_of(con, day)])
            expected = con.execute(
                f"SELECT count(*) FILTER (paatetty IS NULL), count(*) FILTER (paatetty IS NOT NULL) FROM ({versions.state_sql('decisions', 'chosen_files')})"
            ).fetchall()
            assert con.execute(past.replace("DATE '2022-06-30'", "?"), [day]).fetchall() == expected
        chain = con.execute(every).fetchall()
    finally:
        con.close()
    # H00000005: pending in the extract of 31.12.2021, decided in that of 30.6.2022.
    assert [(row[2] is None, row[5], row[8]) for row in chain] == [
        (True, "maksatuspaatokset_2021-12-31.csv", "maksatuspaatokset_2022-06-30.xlsx"),
        (False, "maksatuspaatokset_2022-06-30.xlsx", None),
    ]
