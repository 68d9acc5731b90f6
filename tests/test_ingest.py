"""Ingest bookkeeping: the current state merged file by file, and files not read twice."""

import os
import time

import pytest

from keha_maksatus import warehouse
from keha_maksatus.config import load_settings
from keha_maksatus.ingest import landing as landing_folder
from keha_maksatus.ingest.store import ingest_landing, one_ahead

from conftest import DECISION_HEADER, TEST_KEY, decision, write_export

NAME = "maksatuspaatokset_{}.csv"


def ingest(landing_dir, work_dir):
    con = warehouse.connect(work_dir)
    try:
        outcomes = ingest_landing(con, landing_dir, TEST_KEY, load_settings())
        current = {r[0]: r[1:] for r in con.execute("SELECT hakemus_id, paatetty, file_name FROM core.decisions").fetchall()}
    finally:
        con.close()
    return outcomes, current


def test_a_late_delivered_older_extract_does_not_replace_newer_rows(landing, tmp_path):
    write_export(landing, NAME.format("2022-12-31"), DECISION_HEADER, [decision("H1", "1.5.2022", "20.5.2022")])
    ingest(landing, tmp_path / "work")
    # the June extract arrives after the December one: its H1 is older, its H2 is new
    write_export(landing, NAME.format("2022-06-30"), DECISION_HEADER, [decision("H1", "1.5.2022"), decision("H2", "1.6.2022")])
    _, current = ingest(landing, tmp_path / "work")
    assert current["H1"][1] == NAME.format("2022-12-31") and current["H1"][0] is not None
    assert current["H2"][1] == NAME.format("2022-06-30")
    # a later extract replaces both
    write_export(landing, NAME.format("2023-01-31"), DECISION_HEADER, [decision("H1", "1.5.2022", "21.5.2022"), decision("H2", "1.6.2022", "1.7.2022")])
    _, current = ingest(landing, tmp_path / "work")
    assert {k: v[1] for k, v in current.items()} == {"H1": NAME.format("2023-01-31"), "H2": NAME.format("2023-01-31")}
    assert current["H1"][0].day == 21


def test_unchanged_files_are_not_hashed_again_and_changed_ones_are(landing, tmp_path, monkeypatch):
    path = write_export(landing, NAME.format("2022-06-30"), DECISION_HEADER, [decision("H1", "1.5.2022")])
    ingest(landing, tmp_path / "work")
    hashed = []
    original = landing_folder.content_hash
    monkeypatch.setattr(landing_folder, "content_hash", lambda p: hashed.append(p.name) or original(p))
    outcomes, _ = ingest(landing, tmp_path / "work")
    assert (outcomes, hashed) == ([], [])
    # same name and size, new content and time: read again
    write_export(landing, NAME.format("2022-06-30"), DECISION_HEADER, [decision("H2", "1.5.2022")])
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    outcomes, current = ingest(landing, tmp_path / "work")
    assert hashed == [NAME.format("2022-06-30")] and [o.status for o in outcomes] == ["ingested"]
    assert set(current) == {"H1", "H2"}


def test_one_ahead_keeps_the_order_and_prepares_only_the_next_item():
    started = []

    def work(item):
        started.append(item)
        return item * 10

    seen = []
    for result in one_ahead(work, range(6)):
        time.sleep(0.02)  # a slow consumer: the worker must still not run further ahead
        # while result i is handled, only items up to i + 1 may have been started
        assert len(started) <= result // 10 + 2
        seen.append(result)
    assert seen == [0, 10, 20, 30, 40, 50] and started == list(range(6))


def test_one_ahead_passes_on_the_error_of_an_item():
    def work(item):
        if item == 2:
            raise ValueError("item 2")
        return item

    results = one_ahead(work, range(4))
    assert [next(results), next(results)] == [0, 1]
    with pytest.raises(ValueError, match="item 2"):
        next(results)


def test_files_prepared_ahead_are_stored_in_name_order_with_their_own_outcomes(landing, tmp_path):
    write_export(landing, NAME.format("2022-06-30"), DECISION_HEADER, [decision("H1", "1.5.2022"), decision("H2", "1.6.2022")])
    write_export(landing, NAME.format("2022-09-30"), DECISION_HEADER, [decision("H1", "1.5.2022", "20.5.2022"), decision("H3", "oops")])
    (landing / "muistio.txt").write_text("not an export")
    write_export(landing, NAME.format("2022-12-31"), DECISION_HEADER, [decision("H2", "1.6.2022", "1.7.2022")])
    outcomes, current = ingest(landing, tmp_path / "work")
    assert [(o.file_name, o.status, o.rows_valid, o.rows_rejected) for o in outcomes] == [
        (NAME.format("2022-06-30"), "ingested", 2, 0),
        (NAME.format("2022-09-30"), "ingested", 1, 1),
        (NAME.format("2022-12-31"), "ingested", 1, 0),
        ("muistio.txt", "unreadable", 0, 0),
    ]
    assert {k: v[1] for k, v in current.items()} == {"H1": NAME.format("2022-09-30"), "H2": NAME.format("2022-12-31")}


def test_an_ingest_log_of_the_earlier_version_is_upgraded_and_keeps_the_order(landing, tmp_path):
    work = tmp_path / "work"
    write_export(landing, NAME.format("2022-06-30"), DECISION_HEADER, [decision("H1", "1.5.2022")])
    ingest(landing, work)
    con = warehouse.connect(work)
    try:  # the log as the earlier version wrote it
        for column in ("name_order", "changed_at", "inode"):
            con.execute(f"ALTER TABLE quality.ingest_log DROP COLUMN {column}")
        con.execute("ALTER TABLE quality.ingest_log ALTER COLUMN content_sha256 SET NOT NULL")
    finally:
        con.close()
    write_export(landing, NAME.format("2022-12-31"), DECISION_HEADER, [decision("H1", "1.5.2022", "20.5.2022")])
    outcomes, current = ingest(landing, work)
    assert [o.file_name for o in outcomes] == [NAME.format("2022-12-31")]  # the old file is not logged again
    write_export(landing, NAME.format("2022-03-31"), DECISION_HEADER, [decision("H1", "1.5.2022")])
    outcomes, current = ingest(landing, work)
    assert [o.file_name for o in outcomes] == [NAME.format("2022-03-31")]
    assert current["H1"][1] == NAME.format("2022-12-31")
    con = warehouse.connect(work)
    try:
        orders = con.execute("SELECT file_name, name_order FROM quality.ingest_log").fetchall()
    finally:
        con.close()
    assert {name: bytes(order) for name, order in orders} == {name: name.encode() for name, _ in orders}
