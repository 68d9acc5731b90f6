"""No identity code, business ID, e-mail address or phone number from the input reaches
any table, export, report or dashboard."""

import re
from pathlib import Path

import duckdb
import polars as pl
import pytest

from keha_maksatus.config import DEFAULT_LANDING
from keha_maksatus.ingest.readers import read_export
from keha_maksatus.outputs.publish import output_folders
from keha_maksatus.state import warehouse_files

PATTERNS = (
    r"\b\d{6}[-+A-FU-Y]\d{3}[0-9A-Y]\b",  # personal identity code
    r"\b\d{7}-\d\b",  # business ID
    r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+",  # e-mail
    r"(?:\+358|\b0)\d{1,2}[ -]?\d{3}[ -]?\d{3,4}\b",  # phone
)


@pytest.fixture(scope="module")
def secrets() -> set[str]:
    """Every identity code and contact detail in the bundled sample's exports."""
    found = set()
    for path in DEFAULT_LANDING.iterdir():
        frame = read_export(path).frame
        if "asiakastunnus" in frame.columns:
            found |= set(frame["asiakastunnus"].drop_nulls().str.strip_chars().to_list())
        if "vapaa_teksti" in frame.columns:
            for text in frame["vapaa_teksti"].drop_nulls().to_list():
                for pattern in PATTERNS:
                    found |= set(re.findall(pattern, text))
    assert len(found) > 100  # the sample does carry personal data to leak
    return {s for s in found if len(s) >= 9}


def database_text(path: Path) -> str:
    con = duckdb.connect(str(path), read_only=True)
    try:
        columns = con.execute(
            "SELECT table_schema, table_name, column_name FROM information_schema.columns WHERE data_type = 'VARCHAR'"
        ).fetchall()
        return "\n".join(
            str(value) for s, t, c in columns for (value,) in con.execute(f'SELECT DISTINCT "{c}" FROM "{s}"."{t}"').fetchall()
        )
    finally:
        con.close()


def output_texts(published: Path) -> dict[str, str]:
    texts = {"warehouse": database_text(published)}
    for working in sorted(warehouse_files(published).state_dir.glob("*.duckdb")):
        texts[f"working file {working.name}"] = database_text(working)
    folders = output_folders(published)
    for folder in (folders.report, folders.dashboards, folders.exports):
        for path in folder.iterdir():
            if path.suffix in (".md", ".html", ".csv"):
                texts[path.name] = path.read_text(encoding="utf-8-sig")
            elif path.suffix == ".parquet":
                texts[path.name] = pl.read_parquet(path).write_csv()
            elif path.suffix == ".xlsx":
                sheets = pl.read_excel(path, sheet_id=0)
                texts[path.name] = "\n".join(frame.write_csv() for frame in sheets.values())
    return texts


def test_no_personal_data_in_any_output(sample_warehouse, secrets):
    texts = output_texts(sample_warehouse)
    assert {"warehouse", "working file warehouse.duckdb", "laatuosio.html", "index.html", "maksatus_kpi.xlsx", "kpi_backlog.parquet"} <= set(texts)
    for name, text in texts.items():
        leaked = sorted(s for s in secrets if s in text)
        assert not leaked, f"{name} contains {leaked[:3]}"
        if name != "plotly.min.js":
            for pattern in PATTERNS[:3]:
                assert not re.search(pattern, text), f"{name} matches {pattern}"


def test_no_free_text_in_reports_dashboards_or_exports(sample_warehouse):
    con = duckdb.connect(str(sample_warehouse), read_only=True)
    try:
        comments = [c for (c,) in con.execute("SELECT DISTINCT vapaa_teksti FROM core.feedback WHERE vapaa_teksti IS NOT NULL").fetchall()]
    finally:
        con.close()
    assert comments
    texts = output_texts(sample_warehouse)
    for name, text in texts.items():
        if name == "warehouse" or name.startswith("working file"):
            continue
        assert not [c for c in comments if c in text], name
