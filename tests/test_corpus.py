"""The bad-input corpus: every case in tests/corpus/ runs through ingest, KPIs, publish,
report, dashboards and exports; balances its books, quarantines what it must, its KPIs
equal those computed from its valid rows alone, and no output holds the case's personal
data or a live formula.

A case folder holds the landing files and expected.toml. Entries that git cannot hold as
plain files are made by the harness from `[[special]]` entries (symlink, directory, fifo,
copy under a raw-byte name); files named `_*` and the folder `outside/` are not copied
into the landing folder (they serve as link targets and sources of copies)."""

import datetime as dt
import hashlib
import os
import shutil
import tomllib
from pathlib import Path

import pytest

from keha_maksatus import warehouse
from keha_maksatus.config import PROCESSING_TIME, SATISFACTION
from keha_maksatus.ingest.readers import read_export
from keha_maksatus.ingest.schemas import kind_of_file
from keha_maksatus.ingest.validation import validate_read
from keha_maksatus.kpi import OFFICIAL_SURVEYS
from keha_maksatus.outputs.publish import publish

from conftest import build_working, quality_row, write_outputs
from output_scan import formula_cells, output_texts, personal_data_in

CORPUS = Path(__file__).parent / "corpus"
CASES = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())


def test_corpus_has_at_least_thirty_cases():
    assert len(CASES) >= 30


def latest_valid_rows(con, landing: Path, kind: str, id_column: str) -> dict[str, dict]:
    """Valid rows of the used files, the latest extract (file-name order) per id: each
    file validated again here and the latest row picked in Python, independently of the
    pipeline's SQL merge."""
    used = con.execute(
        "SELECT content_sha256, file_id, extract_date FROM quality.ingest_log WHERE status = 'ingested' AND kind = ?", [kind]
    ).fetchall()
    by_hash = files_by_hash(landing)
    latest: dict[str, dict] = {}
    for digest, file_id, extract_date in used:
        path = by_hash[digest]
        read = read_export(path)
        valid = validate_read(read, kind_of_file(path.name), extract_date).valid
        for row in valid.to_dicts():
            key = (os.fsencode(path.name), file_id)
            if row[id_column] not in latest or key > latest[row[id_column]]["_key"]:
                latest[row[id_column]] = {**row, "_key": key}
    return latest


def files_by_hash(landing: Path) -> dict[str, Path]:
    """SHA-256 -> path of the regular files of the landing folder (the log may show a
    name escaped or masked)."""
    return {
        hashlib.sha256(path.read_bytes()).hexdigest(): path
        for path in landing.iterdir()
        if path.is_file() and not path.is_symlink()
    }


def reference_kpis(con, landing: Path, periods) -> dict[tuple[str, str], tuple[int, float | None]]:
    decisions = latest_valid_rows(con, landing, "decisions", "hakemus_id").values()
    feedback = latest_valid_rows(con, landing, "feedback", "vastaus_id").values()
    expected = {}
    for label, start, end in periods:
        days = [(r["paatetty"] - r["saapunut"]).days for r in decisions if r["paatetty"] and start <= r["paatetty"] <= end]
        scores = [
            r["arvosana"] for r in feedback
            if r["palvelu"] == "maksatus" and r["kysely"] in OFFICIAL_SURVEYS and r["arvosana"] is not None
            and start <= r["vastattu"].date() <= end
        ]
        expected[(PROCESSING_TIME, label)] = (len(days), sum(days) / len(days) if days else None)
        expected[(SATISFACTION, label)] = (len(scores), sum(scores) / len(scores) if scores else None)
    return expected


@pytest.mark.parametrize("case", CASES)
def test_corpus_case(case, tmp_path):
    folder = CORPUS / case
    expected = tomllib.loads((folder / "expected.toml").read_text(encoding="utf-8"))
    landing = lay_out_landing(folder, tmp_path / "landing", expected.get("special", []))
    # `not_personal_data`: ids and dates of the case that the scan's broad patterns would take for personal data
    secrets = personal_data_in(folder, expected.get("personal_data", [])) - set(expected.get("not_personal_data", []))

    work_dir = tmp_path / "work"
    con = build_working(landing, work_dir, today=dt.date(2022, 6, 30))  # the run finishes
    try:
        log = {r[0]: r[1:] for r in con.execute(
            "SELECT file_name, status, rows_read, rows_valid, rows_rejected, reason FROM quality.ingest_log"
        ).fetchall()}
        assert set(log) == {f["name"] for f in expected["file"]}
        for f in expected["file"]:
            status, read, valid, rejected, reason = log[f["name"]]
            assert (status, read, valid, rejected) == (f["status"], f["rows_read"], f["rows_valid"], f["rows_rejected"]), (f["name"], reason)
            assert read == valid + rejected
            if status != "ingested":
                assert reason, f"{f['name']}: a file held back must say why"

        quarantine = con.execute("SELECT file_name, line, column_name, rule, raw_value FROM quality.quarantine").fetchall()
        assert all(file and line >= 2 and column and rule for file, line, column, rule, _ in quarantine)
        assert {q[:4] for q in quarantine} == {(r["file"], r["line"], r["column"], r["rule"]) for r in expected.get("rejection", [])}
        for name, (_, _, _, rejected, _) in log.items():
            assert len({q[1] for q in quarantine if q[0] == name}) == rejected

        for check in expected.get("core", []):
            table, id_column = ("feedback", "vastaus_id") if check["id"].startswith("V") else ("decisions", "hakemus_id")
            value = con.execute(f"SELECT {check['field']} FROM core.{table} WHERE {id_column} = ?", [check["id"]]).fetchall()
            assert len(value) == 1, check
            want = None if check.get("null") else check["value"]
            got = value[0][0].isoformat() if isinstance(value[0][0], dt.date) else value[0][0]
            assert got == want, check

        for check in expected.get("period", []):
            row = quality_row(con, check["indicator"], check["period"])
            assert {k: row[k] for k in check if k in row and k != "indicator"} == {k: v for k, v in check.items() if k in row and k != "indicator"}, check
        assert nothing_vanishes(con), "rows in core.* outside every listed year"

        periods = con.execute("SELECT DISTINCT period_label, period_start, period_end FROM kpi.quality_section").fetchall()
        for (indicator, label), (n, value) in reference_kpis(con, landing, periods).items():
            row = quality_row(con, indicator, label)
            assert row["n"] == n, (indicator, label)
            assert row["value"] == pytest.approx(value), (indicator, label)

        published = publish(con, warehouse.working_path(work_dir), tmp_path / "out" / "maksatus.duckdb")
    finally:
        con.close()
    folders = write_outputs(published)

    texts = output_texts(published, [work_dir, tmp_path / "out"])
    for name, text in texts.items():
        leaked = sorted(s for s in secrets if s in text)
        assert not leaked, f"{case}: {name} holds personal data {leaked[:3]}"
    assert formula_cells(folders.exports) == []


def nothing_vanishes(con) -> bool:
    """Every decided application and every scored official response counts in the
    full-year period of its year."""
    return con.execute(
        f"""
        SELECT
          (SELECT count(*) FROM core.decisions WHERE paatetty IS NOT NULL)
            = (SELECT coalesce(sum(n), 0) FROM kpi.quality_section WHERE indicator = '{PROCESSING_TIME}' AND period_label LIKE '1-12/%'),
          (SELECT count(*) FROM core.feedback WHERE palvelu = 'maksatus' AND arvosana IS NOT NULL AND kysely IN {OFFICIAL_SURVEYS})
            = (SELECT coalesce(sum(n), 0) FROM kpi.quality_section WHERE indicator = '{SATISFACTION}' AND period_label LIKE '1-12/%')
        """
    ).fetchall()[0] == (True, True)


def lay_out_landing(case: Path, landing: Path, specials: list[dict]) -> Path:
    """The case's landing folder in tmp: its plain files copied, its special entries made."""
    landing.mkdir()
    for path in case.iterdir():
        if path.is_file() and path.name != "expected.toml" and not path.name.startswith("_"):
            shutil.copy(path, landing / path.name)
    for entry in specials:
        name = bytes.fromhex(entry["name_hex"]) if "name_hex" in entry else os.fsencode(entry["name"])
        target = os.path.join(os.fsencode(landing), name)
        kind = entry["kind"]
        if kind == "symlink":
            os.symlink(os.fsencode(case / entry["source"]), target)
        elif kind == "directory":
            os.mkdir(target)
        elif kind == "fifo":
            os.mkfifo(target)
        elif kind == "copy":
            shutil.copyfile(os.fsencode(case / entry["source"]), target)
        else:
            raise ValueError(f"{case.name}: unknown special kind {kind!r}")
    return landing
