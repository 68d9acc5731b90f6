"""The landing folder taken literally: only regular files read, any bytes in a name,
every entry logged once, and "already ingested" that misses no rewrite."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import shutil
import socket
import stat
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from keha_maksatus import warehouse
from keha_maksatus.config import load_settings
from keha_maksatus.ingest import landing as landing_folder
from keha_maksatus.ingest.store import ingest_landing

from conftest import DECISION_HEADER, HETU, TEST_KEY, decision
from output_scan import database_text

PREFIX = b"maksatuspaatokset_2022-06-30_"
# Personal data that lives only outside the landing folder, behind a link.
OUTSIDE_EMAIL = "matti.meikalainen.outside@example.fi"
OUTSIDE_CODE = "010190-123F"


def export_bytes(*rows: str) -> bytes:
    return ("\r\n".join([DECISION_HEADER, *rows]) + "\r\n").encode("utf-8")


def put(folder: Path, name: bytes | str, data: bytes) -> bytes:
    """A file under a raw-byte name; returns the name's bytes."""
    raw = os.fsencode(name)
    with open(os.path.join(os.fsencode(folder), raw), "wb") as handle:
        handle.write(data)
    return raw


def run(landing: Path, work: Path, settings=None):
    """One ingest; the outcomes and the ingest log (without ingested_at)."""
    con = warehouse.connect(work)
    try:
        outcomes = ingest_landing(con, landing, TEST_KEY, settings or load_settings())
        log = con.execute("SELECT * EXCLUDE (ingested_at) FROM quality.ingest_log ORDER BY file_id").fetchall()
    finally:
        con.close()
    return outcomes, log


def query(work: Path, sql: str, params=()):
    con = warehouse.connect(work)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def statuses(work: Path) -> dict[str, tuple]:
    return {
        name: tuple(rest)
        for name, *rest in query(work, "SELECT file_name, status, rows_read, rows_valid, rows_rejected, reason FROM quality.ingest_log")
    }


# --- 5. only regular files directly in the folder -------------------------------------------


def test_links_folders_and_special_files_are_logged_skipped_once_and_never_followed(tmp_path, monkeypatch):
    landing, outside, work = tmp_path / "landing", tmp_path / "outside", tmp_path / "work"
    landing.mkdir()
    outside.mkdir()
    put(landing, "maksatuspaatokset_2022-06-30.csv", export_bytes(decision("H1", "1.5.2022")))
    secret = export_bytes(decision("X1", "1.5.2022", asiakas=OUTSIDE_CODE) + ";" + OUTSIDE_EMAIL)
    put(outside, "maksatuspaatokset_2022-05-31.csv", secret)
    (landing / "maksatuspaatokset_2022-05-31.csv").symlink_to(outside / "maksatuspaatokset_2022-05-31.csv")
    (landing / "maksatuspaatokset_2022-07-31.csv").symlink_to("maksatuspaatokset_2022-06-30.csv")  # inside
    (landing / "maksatuspaatokset_2022-08-31.csv").symlink_to(landing / "gone.csv")  # dangling
    (landing / "maksatuspaatokset_kansio").mkdir()
    put(landing / "maksatuspaatokset_kansio", "maksatuspaatokset_2022-09-30.csv", export_bytes(decision("H9", "1.5.2022")))
    (landing / "linkki_kansioon").symlink_to(outside, target_is_directory=True)
    os.mkfifo(landing / "maksatuspaatokset_2022-10-31.csv")  # opening it would wait for a writer
    monkeypatch.chdir(landing)  # a socket's path must be short
    with socket.socket(socket.AF_UNIX) as server:
        server.bind("asiakaspalaute_socket.csv")
        outcomes, log = run(landing, work)

        assert statuses(work) == {
            "maksatuspaatokset_2022-06-30.csv": ("ingested", 1, 1, 0, None),
            "maksatuspaatokset_2022-05-31.csv": ("skipped", 0, 0, 0, landing_folder.SKIP_REASONS[stat.S_IFLNK]),
            "maksatuspaatokset_2022-07-31.csv": ("skipped", 0, 0, 0, landing_folder.SKIP_REASONS[stat.S_IFLNK]),
            "maksatuspaatokset_2022-08-31.csv": ("skipped", 0, 0, 0, landing_folder.SKIP_REASONS[stat.S_IFLNK]),
            "linkki_kansioon": ("skipped", 0, 0, 0, landing_folder.SKIP_REASONS[stat.S_IFLNK]),
            "maksatuspaatokset_kansio": ("skipped", 0, 0, 0, landing_folder.SKIP_REASONS[stat.S_IFDIR]),
            "maksatuspaatokset_2022-10-31.csv": ("skipped", 0, 0, 0, landing_folder.SKIP_REASONS[stat.S_IFIFO]),
            "asiakaspalaute_socket.csv": ("skipped", 0, 0, 0, landing_folder.SKIP_REASONS[stat.S_IFSOCK]),
        }
        assert "link" in landing_folder.SKIP_REASONS[stat.S_IFLNK] and "not followed" in landing_folder.SKIP_REASONS[stat.S_IFLNK]
        assert [o.file_name for o in outcomes] == sorted(o.file_name for o in outcomes)  # file-name order
        # nothing of a skipped entry but its name is kept
        skipped = query(work, "SELECT content_sha256, size_bytes, modified_at, inode, file_format FROM quality.ingest_log WHERE status = 'skipped'")
        assert skipped == [(None, None, None, None, None)] * 7
        assert {r[0] for r in query(work, "SELECT hakemus_id FROM core.decisions")} == {"H1"}

        # a rerun logs nothing again and changes nothing
        again, log_again = run(landing, work)
        assert again == [] and log_again == log

    # nothing read from outside the landing folder is stored anywhere in the working file
    text = database_text(warehouse.working_path(work))
    raw = warehouse.working_path(work).read_bytes()
    for value in (OUTSIDE_CODE, OUTSIDE_EMAIL):
        assert value not in text and value.encode() not in raw
    assert landing_folder.content_hash(outside / "maksatuspaatokset_2022-05-31.csv") not in {r[3] for r in log}


def test_the_sensor_lists_only_regular_files(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    put(landing, "maksatuspaatokset_2022-06-30.csv", export_bytes(decision("H1", "1.5.2022")))
    put(landing, PREFIX + b"\xff\n.csv", export_bytes(decision("H2", "1.5.2022")))
    (landing / "maksatuspaatokset_2022-07-31.csv").symlink_to(landing / "maksatuspaatokset_2022-06-30.csv")
    (landing / "maksatuspaatokset_2022-08-31.csv").symlink_to(landing / "gone.csv")
    os.mkfifo(landing / "maksatuspaatokset_2022-10-31.csv")
    (landing / "kansio").mkdir()
    (landing / "maksatuspaatokset_2022-11-30.csv.part").write_bytes(b"partial")
    (landing / ".piilo.csv").write_bytes(b"hidden")
    old = os.stat(landing / "maksatuspaatokset_2022-06-30.csv").st_mtime + 3600
    stable = landing_folder.stable_files(landing, 60, now=old)
    assert [f.logged_name for f in stable] == ["maksatuspaatokset_2022-06-30.csv", "maksatuspaatokset_2022-06-30_\\xff\\n.csv"]
    assert all(f.skip_reason is None for f in stable)
    assert {e.logged_name for e in landing_folder.scan_landing(landing)} == {
        "maksatuspaatokset_2022-06-30.csv", "maksatuspaatokset_2022-06-30_\\xff\\n.csv", "maksatuspaatokset_2022-07-31.csv",
        "maksatuspaatokset_2022-08-31.csv", "maksatuspaatokset_2022-10-31.csv", "kansio",
    }


def test_the_sensor_starts_a_run_for_odd_names_and_for_a_rewrite_in_place_only(tmp_path):
    import dagster as dg

    from pipelines.resources import WarehouseResource
    from pipelines.sensors import new_exports_sensor

    landing = tmp_path / "landing"
    landing.mkdir()
    put(landing, PREFIX + b"\xff\n" + HETU.encode() + b".csv", export_bytes(decision("H1", "1.5.2022", "20.5.2022")))
    path = landing / os.fsdecode(PREFIX + b"\xff\n" + HETU.encode() + b".csv")
    (landing / "maksatuspaatokset_2022-07-31.csv").symlink_to(path)
    os.mkfifo(landing / "maksatuspaatokset_2022-10-31.csv")
    old = os.stat(path).st_mtime_ns - 3600 * 10**9
    os.utime(path, ns=(old, old))
    resources = {"warehouse": WarehouseResource(landing_dir=str(landing), warehouse_path=str(tmp_path / "wh.duckdb"))}

    def evaluate(cursor=None):
        with dg.build_sensor_context(resources=resources, cursor=cursor) as context:
            return new_exports_sensor(context), context.cursor

    request, cursor = evaluate()
    assert isinstance(request, dg.RunRequest) and request.run_key.isprintable() and HETU not in cursor
    assert isinstance(evaluate(cursor)[0], dg.SkipReason)
    with path.open("r+b") as handle:  # same size, old modification time put back
        handle.write(export_bytes(decision("H1", "1.5.2022", "21.5.2022")))
    os.utime(path, ns=(old, old))
    assert isinstance(evaluate(cursor)[0], dg.RunRequest)


# --- 4. any bytes in a name ----------------------------------------------------------------

ODD_NAMES = {
    PREFIX + b"\xff\xfe.csv": "maksatuspaatokset_2022-06-30_\\xff\\xfe.csv",  # not UTF-8
    PREFIX + b"latin1_\xe4.csv": "maksatuspaatokset_2022-06-30_latin1_\\xe4.csv",
    PREFIX + b"a\nb.csv": "maksatuspaatokset_2022-06-30_a\\nb.csv",
    PREFIX + b"cr\r\ttab.csv": "maksatuspaatokset_2022-06-30_cr\\r\\ttab.csv",
    PREFIX + b"\x1b[31m\x07\x7f.csv": "maksatuspaatokset_2022-06-30_\\x1b[31m\\x07\\x7f.csv",
    PREFIX + "nbsp\u00a0zw\u200b.csv".encode(): "maksatuspaatokset_2022-06-30_nbsp\\xa0zw\\u200b.csv",
    PREFIX + b"back\\slash.csv": "maksatuspaatokset_2022-06-30_back\\\\slash.csv",
    PREFIX + "ääkköset.csv".encode(): "maksatuspaatokset_2022-06-30_ääkköset.csv",
    PREFIX + b"new line before.csv\n.csv": "maksatuspaatokset_2022-06-30_new line before.csv\\n.csv",
    PREFIX + b"star*?[x].csv": "maksatuspaatokset_2022-06-30_star*?[x].csv",
}


def test_any_bytes_in_a_name_are_read_and_logged_escaped_once(tmp_path):
    landing, work = tmp_path / "landing", tmp_path / "work"
    landing.mkdir()
    for i, raw in enumerate(ODD_NAMES):
        put(landing, raw, export_bytes(decision(f"H{i}", "1.5.2022")))
    outcomes, log = run(landing, work)
    logged = statuses(work)
    assert set(logged) == set(ODD_NAMES.values())
    assert all(name.isprintable() for name in logged)
    assert {name: status[:4] for name, status in logged.items()} == {name: ("ingested", 1, 1, 0) for name in ODD_NAMES.values()}, logged
    assert [o.file_name for o in outcomes] == [ODD_NAMES[raw] for raw in sorted(ODD_NAMES)]  # real-name order
    assert set(query(work, "SELECT file_name FROM core.decisions")) == {(n,) for n in ODD_NAMES.values()}
    # the name's bytes are the order; the extract date only from a real _YYYY-MM-DD
    assert {bytes(r[0]) for r in query(work, "SELECT name_order FROM quality.ingest_log")} == set(ODD_NAMES)
    assert {r[0].isoformat() for r in query(work, "SELECT extract_date FROM quality.ingest_log")} == {"2022-06-30"}
    again, log_again = run(landing, work)
    assert again == [] and log_again == log


@pytest.mark.parametrize(
    "first, later",
    [
        (PREFIX + b"\n.csv", PREFIX + b"A.csv"),  # escaped, the newline would sort after "A"
        (PREFIX + b"z.csv", PREFIX + b"\xff.csv"),  # escaped, \xff would sort before "z"
        (PREFIX + b"a\x01.csv", PREFIX + b"a.csv"),  # escaped, \x01 would sort after "."
    ],
)
@pytest.mark.parametrize("arrival", ["together", "later first", "earlier first"])
def test_the_later_extract_in_real_name_order_wins(tmp_path, first, later, arrival):
    """`later` is after `first` in the bytes of the names (not in their escaped forms):
    its H1 stands however the files arrive."""
    landing, work = tmp_path / "landing", tmp_path / "work"
    landing.mkdir()
    assert first < later
    files = {first: export_bytes(decision("H1", "1.5.2022", haettu="100,00")),
             later: export_bytes(decision("H1", "1.5.2022", haettu="200,00"))}
    order = {"together": [[first, later]], "later first": [[later], [first]], "earlier first": [[first], [later]]}[arrival]
    for batch in order:
        for raw in batch:
            put(landing, raw, files[raw])
        run(landing, work)
    assert query(work, "SELECT haettu_eur, file_name FROM core.decisions") == [(200.0, landing_folder.log_text(os.fsdecode(later)))]


@pytest.mark.parametrize(
    "raw",
    [
        b"maksatuspaatokset_2022-06-30 " + HETU.encode() + b".csv",
        b"maksatuspaatokset_2022-06-30_" + HETU.encode() + b".csv",  # glued to "_"
        b"maksatuspaatokset_2022-06-30_" + HETU.encode() + b"_\xff.csv",
        b"maksatuspaatokset_2022-06-30 matti.meikalainen@example.fi.csv",
    ],
)
def test_personal_data_in_a_file_name_is_masked_wherever_the_name_is_kept(tmp_path, raw):
    landing, work = tmp_path / "landing", tmp_path / "work"
    landing.mkdir()
    put(landing, raw, export_bytes(decision("H1", "1.5.2022"), decision("H2", "huono")))
    _, log = run(landing, work)
    (name, (status, *_)), = statuses(work).items()
    assert status == "ingested" and name.startswith("maksatuspaatokset_2022-06-30") and name.isprintable()
    personal = HETU if HETU.encode() in raw else "matti.meikalainen@example.fi"
    assert query(work, "SELECT DISTINCT file_name FROM quality.quarantine") == [(name,)]
    assert query(work, "SELECT DISTINCT file_name FROM core.decisions") == [(name,)]
    assert personal not in database_text(warehouse.working_path(work))
    assert personal.encode() not in b"".join(bytes(r[0]) for r in query(work, "SELECT name_order FROM quality.ingest_log"))
    assert query(work, "SELECT extract_date FROM quality.ingest_log")[0][0].isoformat() == "2022-06-30"


def test_the_extract_date_is_taken_only_from_a_real_date_in_the_name():
    today = dt.date(2022, 1, 2)
    cases = {
        "maksatuspaatokset_2022-06-30.csv": "2022-06-30",
        "maksatuspaatokset_2022-02-30_2022-03-31.csv": "2022-03-31",  # the first real one
        "maksatuspaatokset_2022-06-301.csv": "2022-01-02",  # part of a longer number
        "maksatuspaatokset_\u0662\u0660\u0662\u0662-06-30.csv": "2022-01-02",  # Arabic-Indic digits
        "maksatuspaatokset_2022-6-30.csv": "2022-01-02",
        "maksatuspaatokset_\udcff2022-06-30.csv": "2022-01-02",
        "maksatuspaatokset_x_2022-06-30\udcff.csv": "2022-06-30",
    }
    assert {name: landing_folder.extract_date(name, today).isoformat() for name in cases} == cases


@hypothesis_settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    suffixes=st.lists(
        st.binary(min_size=1, max_size=40).filter(lambda b: b"/" not in b and b"\x00" not in b),
        min_size=1, max_size=5, unique=True,
    ),
    split=st.integers(min_value=0, max_value=5),
)
def test_any_name_bytes_never_crash_a_run_and_each_file_is_logged_once(suffixes, split):
    """Files `maksatuspaatokset_2022-06-30_<any bytes>.csv`, in two runs: every one is
    logged once under a printable name, a rerun adds nothing, and H1 of the last name
    in byte order stands."""
    names = [PREFIX + suffix + b".csv" for suffix in suffixes]
    with tempfile.TemporaryDirectory() as folder:
        landing, work = Path(folder) / "landing", Path(folder) / "work"
        landing.mkdir()
        for batch in (names[:split], names[split:]):
            for raw in batch:
                put(landing, raw, export_bytes(decision("H1", "1.5.2022", haettu=f"{names.index(raw)},00")))
            run(landing, work)
        _, log = run(landing, work)
        logged = query(work, "SELECT file_name, status, name_order FROM quality.ingest_log")
        assert len(logged) == len(names) == len(log)
        assert all(name.isprintable() and status == "ingested" for name, status, _ in logged), logged
        assert sorted(bytes(order) for _, _, order in logged) == sorted(names)
        assert query(work, "SELECT haettu_eur FROM core.decisions") == [(float(names.index(max(names))),)]


# --- 6. already ingested -------------------------------------------------------------------


def test_a_file_rewritten_in_place_with_its_old_modification_time_is_read_again(tmp_path):
    landing, work = tmp_path / "landing", tmp_path / "work"
    landing.mkdir()
    path = landing / "maksatuspaatokset_2022-06-30.csv"
    path.write_bytes(export_bytes(decision("H1", "1.5.2022", "20.5.2022")))
    run(landing, work)
    before = os.stat(path)
    with path.open("r+b") as handle:  # same inode, same size, new content
        handle.write(export_bytes(decision("H1", "1.5.2022", "21.5.2022")))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
    outcomes, _ = run(landing, work)
    assert [(o.file_name, o.status) for o in outcomes] == [(path.name, "ingested")]
    assert query(work, "SELECT paatetty FROM core.decisions")[0][0].day == 21

    # replaced by another file (new inode) with the same name, size and times
    replacement = tmp_path / "replacement.csv"
    replacement.write_bytes(export_bytes(decision("H1", "1.5.2022", "22.5.2022")))
    os.utime(replacement, ns=(after.st_atime_ns, after.st_mtime_ns))
    os.replace(replacement, path)
    outcomes, log = run(landing, work)
    assert [o.status for o in outcomes] == ["ingested"] and query(work, "SELECT paatetty FROM core.decisions")[0][0].day == 22
    # untouched: not read again
    assert run(landing, work) == ([], log)


def quarantined_export() -> bytes:
    return export_bytes(decision("H1", "1.5.2022"), decision("H2", "huono"), decision("H3", "huono"))


def test_bytes_quarantined_whole_are_read_again_under_another_name(tmp_path):
    landing, work = tmp_path / "landing", tmp_path / "work"
    landing.mkdir()
    (landing / "maksatuspaatokset_2022-06-30.csv").write_bytes(quarantined_export())
    run(landing, work)
    assert statuses(work)["maksatuspaatokset_2022-06-30.csv"][:4] == ("quarantined", 3, 1, 2)
    # renamed: read again (not duplicate_content), quarantined again
    os.rename(landing / "maksatuspaatokset_2022-06-30.csv", landing / "maksatuspaatokset_2022-06-30_b.csv")
    outcomes, _ = run(landing, work)
    assert [(o.file_name, o.status, o.rows_read) for o in outcomes] == [("maksatuspaatokset_2022-06-30_b.csv", "quarantined", 3, )]
    # with a looser limit, the same bytes under a third name are ingested
    shutil.copy(landing / "maksatuspaatokset_2022-06-30_b.csv", landing / "maksatuspaatokset_2022-06-30_c.csv")
    looser = dataclasses.replace(load_settings(), max_rejected_share=0.9)
    outcomes, _ = run(landing, work, looser)
    assert [(o.file_name, o.status, o.rows_valid) for o in outcomes] == [("maksatuspaatokset_2022-06-30_c.csv", "ingested", 1)]
    assert query(work, "SELECT hakemus_id, file_name FROM core.decisions") == [("H1", "maksatuspaatokset_2022-06-30_c.csv")]
    # ingested bytes under yet another name are duplicate_content, once
    shutil.copy(landing / "maksatuspaatokset_2022-06-30_c.csv", landing / "maksatuspaatokset_2022-06-30_d.csv")
    outcomes, log = run(landing, work, looser)
    assert [(o.file_name, o.status) for o in outcomes] == [("maksatuspaatokset_2022-06-30_d.csv", "duplicate_content")]
    assert "maksatuspaatokset_2022-06-30_c.csv" in outcomes[0].reason
    assert run(landing, work, looser) == ([], log)


def test_unreadable_bytes_are_read_again_under_another_name(tmp_path):
    landing, work = tmp_path / "landing", tmp_path / "work"
    landing.mkdir()
    data = export_bytes(decision("H1", "1.5.2022"))
    (landing / "raportti_2022-06-30.csv").write_bytes(data)  # no export prefix: unreadable
    (landing / "maksatuspaatokset_2022-05-31.xls").write_bytes(data)  # unsupported type: unreadable
    run(landing, work)
    (landing / "maksatuspaatokset_2022-06-30.csv").write_bytes(data)
    outcomes, log = run(landing, work)
    assert [(o.file_name, o.status) for o in outcomes] == [("maksatuspaatokset_2022-06-30.csv", "ingested")]
    assert {n: s[0] for n, s in statuses(work).items()} == {
        "raportti_2022-06-30.csv": "unreadable",
        "maksatuspaatokset_2022-05-31.xls": "unreadable",
        "maksatuspaatokset_2022-06-30.csv": "ingested",
    }
    assert run(landing, work) == ([], log)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_a_file_that_cannot_be_opened_is_logged_once_and_read_when_it_can(tmp_path):
    landing, work = tmp_path / "landing", tmp_path / "work"
    landing.mkdir()
    path = landing / "maksatuspaatokset_2022-06-30.csv"
    path.write_bytes(export_bytes(decision("H1", "1.5.2022")))
    path.chmod(0)
    outcomes, log = run(landing, work)
    assert [(o.status, o.reason) for o in outcomes] == [("unreadable", "cannot be opened: Permission denied")]
    assert run(landing, work) == ([], log)
    path.chmod(0o644)
    outcomes, _ = run(landing, work)
    assert [o.status for o in outcomes] == ["ingested"]


def test_two_runs_over_a_mixed_folder_give_the_same_tables(tmp_path):
    landing, work = tmp_path / "landing", tmp_path / "work"
    landing.mkdir()
    put(landing, "maksatuspaatokset_2022-06-30.csv", export_bytes(decision("H1", "1.5.2022"), decision("H2", "huono")))
    put(landing, "maksatuspaatokset_2022-06-30_kopio.csv", export_bytes(decision("H1", "1.5.2022"), decision("H2", "huono")))
    put(landing, "maksatuspaatokset_2022-07-31.csv", quarantined_export())
    put(landing, "maksatuspaatokset_2022-07-31_kopio.csv", quarantined_export())
    put(landing, "maksatuspaatokset_2022-08-31.csv", b"\x00\x01binary")
    put(landing, "muistio.txt", b"not an export")
    put(landing, "maksatuspaatokset_2022-09-30.csv\n", export_bytes(decision("H4", "1.5.2022")))  # type ".csv\n"
    put(landing, PREFIX + b"\xff.csv", export_bytes(decision("H3", "1.5.2022")))
    (landing / "linkki.csv").symlink_to(landing / "muistio.txt")
    (landing / "kansio").mkdir()
    tables = ["quality.quarantine", "core.decisions", "core.customers"]

    def snapshot():
        return [query(work, f"SELECT * FROM {t} ORDER BY ALL") for t in tables]

    outcomes, log = run(landing, work)
    assert [o.status for o in outcomes] == [
        "skipped", "skipped", "ingested", "duplicate_content", "ingested", "quarantined", "quarantined", "unreadable", "unreadable",
        "unreadable",
    ]
    assert statuses(work)["maksatuspaatokset_2022-09-30.csv\\n"][4] == "unsupported file type '.csv\\n' (accepted: .csv, .txt, .xlsx, .parquet)"
    first = snapshot()
    assert run(landing, work) == ([], log)
    assert snapshot() == first
