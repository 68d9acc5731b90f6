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
    # A correction extract's name sorts after every plain one, whatever its date: name order is not date order.
    "correction": st.booleans(),
})


def names(k: int, content: dict) -> tuple[str, str]:
    infix = "korjaus_" if content.get("correction") else ""
    return (f"maksatuspaatokset_{infix}{EXTRACT_DATES[k]}.csv", f"asiakaspalaute_{infix}{EXTRACT_DATES[k]}.csv")


def write_extract(folder: Path, k: int, content: dict) -> list[Path]:
    """Extract k: its applications and responses, and one row of its own (no two extracts share their bytes)."""
    decisions = [decision(i, saapunut, paatetty) for i, (saapunut, paatetty) in sorted(content["decisions"].items())]
    feedback = [response(v, "10.1.2022", score) for v, score in sorted(content["feedback"].items())]
    decision_name, feedback_name = names(k, content)
    return [
        write_export(folder, decision_name, DECISION_HEADER, [*decisions, decision(f"Z{k}", "2.1.2022")]),
        write_export(folder, feedback_name, FEEDBACK_HEADER, [*feedback, response(f"Z{k}", "2.1.2022", "4")]),
    ]


def ingest_one_by_one(files: list[Path], landing: Path, work: Path) -> duckdb.DuckDBPyConnection:
    """Land the files one at a time in the given order, ingesting after each."""
    con = warehouse.connect(work)
    for path in files:
        landing.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, landing / path.name)
        ingest_landing(con, landing, TEST_KEY, load_settings())
    return con


def expected_state(extracts: list[dict], chosen) -> dict:
    """What the chosen extracts alone say: each id as in the latest of them, in file-name order, that sends it."""
    state = {}
    for k in sorted(chosen, key=lambda k: names(k, extracts[k])[0]):
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


def state_of(con: duckdb.DuckDBPyConnection, file_ids: list[int]) -> dict:
    choose(con, file_ids)
    return observed_state(con, versions.state_sql("decisions", "chosen_files"), versions.state_sql("feedback", "chosen_files"))


def chain_changes(extracts: list[dict]) -> int:
    """Versions the extracts make when they arrive in file-name order: one per id and per change of its content."""
    count, last = 0, {}
    for k in sorted(range(len(extracts)), key=lambda k: names(k, extracts[k])[0]):
        content = extracts[k]
        rows = {**{("d", i): s for i, s in content["decisions"].items()}, **{("f", v): s for v, s in content["feedback"].items()},
                ("d", f"Z{k}"): "z", ("f", f"Z{k}"): "z"}
        for key, value in rows.items():
            count += last.get(key) != value
            last[key] = value
    return count


def choose(con: duckdb.DuckDBPyConnection, file_ids: list[int]) -> None:
    con.execute("CREATE OR REPLACE TEMP TABLE chosen_files AS SELECT unnest(?::INTEGER[]) AS file_id", [file_ids])


def file_ids_of(con: duckdb.DuckDBPyConnection, extracts: list[dict], chosen) -> list[int]:
    wanted = [name for k in chosen for name in names(k, extracts[k])]
    return [f for (f,) in con.execute("SELECT file_id FROM quality.ingest_log WHERE file_name IN (SELECT unnest(?::VARCHAR[]))", [wanted]).fetchall()]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(extracts=st.lists(extract, min_size=2, max_size=5), data=st.data())
def test_any_arrival_order_gives_the_state_of_any_set_of_extracts(tmp_path_factory, extracts, data):
    root = tmp_path_factory.mktemp("versions")
    files = [path for k, content in enumerate(extracts) for path in write_extract(root / "all", k, content)]
    arrival = data.draw(st.permutations(files), label="arrival order")
    con = ingest_one_by_one(arrival, root / "landing", root / "work")
    try:
        everything = range(len(extracts))
        # The current state: each id as the latest extract in file-name order sends it, late arrivals or not.
        assert observed_state(con, "SELECT * FROM core.decisions", "SELECT * FROM core.feedback") == expected_state(extracts, everything)
        # The state as of each date: what the extracts dated up to then alone give.
        for k, day in enumerate(EXTRACT_DATES[: len(extracts)]):
            assert state_of(con, versions.files_as_of(con, day)) == expected_state(extracts, range(k + 1)), f"as of {day}"
        # Any set of extracts at all (a publication made before a late extract came is one).
        for chosen in data.draw(st.lists(st.sets(st.sampled_from(everything), min_size=1), max_size=3), label="sets"):
            assert state_of(con, file_ids_of(con, extracts, chosen)) == expected_state(extracts, chosen), f"extracts {sorted(chosen)}"
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
        if sorted(arrival, key=lambda p: p.name) == arrival:
            # In name order, a row sent again unchanged is no new version: one per change.
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
        assert observed_state(con, "SELECT * FROM core.decisions", "SELECT * FROM core.feedback") == expected_state(extracts, range(3))
        for k in range(3):
            assert state_of(con, versions.files_as_of(con, EXTRACT_DATES[k])) == expected_state(extracts, range(k + 1))
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
            choose(con, versions.files_as_of(con, day))
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


def test_a_late_extract_inside_a_span_of_unchanged_re_sends(tmp_path):
    """A1 decided on 20.1. in the extracts of 31.1., 14.2. and 28.2. (not in 21.2.); the one of 7.2.
    says 25.1. and arrives last. As of 14.2. the row was 20.1. again: 14.2. sent it."""
    extracts = [
        {"decisions": {"A1": STATES[1]}, "feedback": {}},
        {"decisions": {"A1": STATES[2]}, "feedback": {}},
        {"decisions": {"A1": STATES[1]}, "feedback": {}},
        {"decisions": {}, "feedback": {}},
        {"decisions": {"A1": STATES[1]}, "feedback": {}},
    ]
    files = [path for k, content in enumerate(extracts) for path in write_extract(tmp_path / "all", k, content)]
    con = ingest_one_by_one(files[:2] + files[4:] + files[2:4], tmp_path / "landing", tmp_path / "work")
    try:
        for k, day in enumerate(EXTRACT_DATES[:5]):
            assert state_of(con, versions.files_as_of(con, day)) == expected_state(extracts, range(k + 1)), f"as of {day}"
        for chosen in ({0, 1, 3}, {1, 3}, {0, 4}, {1, 2}):
            assert state_of(con, file_ids_of(con, extracts, chosen)) == expected_state(extracts, chosen)
    finally:
        con.close()


def test_a_state_of_an_earlier_version_knows_its_history_from_the_upgrade_on(tmp_path):
    import pytest

    from keha_maksatus.errors import ConfigurationError

    extracts = [{"decisions": {"A1": STATES[0]}, "feedback": {}}, {"decisions": {"A1": STATES[1]}, "feedback": {}}]
    files = [path for k, content in enumerate(extracts) for path in write_extract(tmp_path / "all", k, content)]
    con = ingest_one_by_one(files, tmp_path / "landing", tmp_path / "work")
    # An earlier version kept the current rows alone.
    con.execute("DROP SCHEMA history CASCADE")
    for kind in versions.ID_COLUMNS:
        con.execute(f"ALTER TABLE core.{kind} DROP COLUMN valid_from_file_id; ALTER TABLE core.{kind} DROP COLUMN valid_from_line")
    con.close()
    con = ingest_one_by_one([], tmp_path / "landing", tmp_path / "work")
    try:
        # The whole set of files known at the upgrade still gives its state; a part of it cannot.
        assert state_of(con, versions.files_as_of(con, EXTRACT_DATES[1])) == expected_state(extracts, range(2))
        with pytest.raises(ConfigurationError, match="rebuild the working state"):
            versions.files_as_of(con, EXTRACT_DATES[0])
        with pytest.raises(ConfigurationError, match="rebuild the working state"):
            versions.resolve_point(con, EXTRACT_DATES[0].isoformat())
        # Extracts after the upgrade are known as usual.
        extracts.append({"decisions": {"A1": STATES[2]}, "feedback": {}})
        later = write_extract(tmp_path / "all", 2, extracts[2])
        for path in later:
            shutil.copy(path, tmp_path / "landing" / path.name)
        ingest_landing(con, tmp_path / "landing", TEST_KEY, load_settings())
        assert state_of(con, versions.files_as_of(con, EXTRACT_DATES[2])) == expected_state(extracts, range(3))
    finally:
        con.close()
