"""Shared helpers: small real export files in tmp_path and the library pipeline over them."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import duckdb
import pytest

from keha_maksatus import kpi, warehouse
from keha_maksatus.config import load_settings
from keha_maksatus.forecast.tables import build_forecast_tables
from keha_maksatus.ingest.store import ingest_landing

TEST_KEY = b"test-key"
DECISION_HEADER = "hakemus_id;tukimuoto;yksikko;saapunut;paatetty;paatos;haettu_eur;maksettu_eur;asiakastunnus;taydennys_pv"
FEEDBACK_HEADER = "vastaus_id;kysely;palvelu;vastattu;arvosana;tukimuoto;yksikko;hakemus_id;kieli;vapaa_teksti"
# Checksum-valid customer ids for test rows.
HETU = "131052-308T"
YTUNNUS = "0737546-2"


def write_export(folder: Path, name: str, header: str, rows: list[str], encoding: str = "utf-8", sep: str = ";") -> Path:
    """Write a CSV export: rows are ';'-joined strings (converted when sep differs)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [header, *rows]
    if sep != ";":
        lines = [line.replace(";", sep) for line in lines]
    path = folder / name
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))
    return path


def decision(hakemus_id: str, saapunut: str, paatetty: str = "", paatos: str | None = None, tukimuoto: str = "palkkatuki",
             yksikko: str = "TE-UUS", haettu: str = "1000,00", maksettu: str = "", asiakas: str = HETU, taydennys: str = "") -> str:
    if paatos is None:
        paatos = "myönteinen" if paatetty else ""
    return ";".join([hakemus_id, tukimuoto, yksikko, saapunut, paatetty, paatos, haettu, maksettu, asiakas, taydennys])


def response(vastaus_id: str, vastattu: str, arvosana: str, kysely: str = "kohtaaminen", palvelu: str = "maksatus",
             tukimuoto: str = "", teksti: str = "") -> str:
    return ";".join([vastaus_id, kysely, palvelu, vastattu, arvosana, tukimuoto, "", "", "fi", teksti])


def build_working(landing: Path, work_dir: Path, today: dt.date | None = None) -> duckdb.DuckDBPyConnection:
    """Ingest (with the current state), KPIs and the forecast tables through the library
    (what the assets call; publish needs every published table); the open working connection."""
    settings = load_settings()
    con = warehouse.connect(work_dir)
    ingest_landing(con, landing, TEST_KEY, settings, today=today)
    kpi.build_kpis(con, settings)
    build_forecast_tables(con, settings)
    return con


@pytest.fixture(scope="session", autouse=True)
def throwaway_dagster_instance(tmp_path_factory):
    """`keha-maksatus run` records its runs in DAGSTER_HOME, by default the repo's own
    instance (make dev's): the tests' runs go to a throwaway copy instead."""
    home = tmp_path_factory.mktemp("dagster_home")
    shutil.copy(Path(__file__).resolve().parents[1] / "dagster.yaml", home)
    previous = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(home)
    yield home
    if previous is None:
        os.environ.pop("DAGSTER_HOME", None)
    else:
        os.environ["DAGSTER_HOME"] = previous


def write_outputs(published: Path):
    """The report, dashboards and exports of a published file, as the publish assets write
    them, into its output folders; the folders."""
    from dashboards.pages import build_dashboards
    from keha_maksatus.outputs.exports import write_exports
    from keha_maksatus.outputs.publish import output_folders
    from keha_maksatus.outputs.report import write_report

    folders = output_folders(published)
    write_report(published, folders.report)
    build_dashboards(published, folders.dashboards)
    write_exports(published, folders.exports)
    return folders


@pytest.fixture(scope="session")
def sample_warehouse(tmp_path_factory) -> Path:
    """The whole Dagster job on the bundled sample, as `make run` runs it; the published file."""
    from keha_maksatus.config import DEFAULT_LANDING
    from pipelines.definitions import build_definitions

    published = tmp_path_factory.mktemp("sample_warehouse") / "maksatus.duckdb"
    result = build_definitions(str(DEFAULT_LANDING), str(published)).resolve_job_def("nightly").execute_in_process()
    assert result.success
    return published


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    folder = tmp_path / "landing"
    folder.mkdir()
    return folder


def quality_row(con: duckdb.DuckDBPyConnection, indicator: str, period: str) -> dict:
    frame = con.sql(
        "SELECT * FROM kpi.quality_section WHERE indicator = ? AND period_label = ?", params=[indicator, period]
    ).pl()
    assert frame.height == 1, f"expected one row for {indicator} {period}, got {frame.height}"
    return frame.row(0, named=True)


CHROMIUM = shutil.which("chromium")
# Browser tests use Debian's chromium; CI installs it (.ci/run), so there they never skip.
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"), reason="Debian's chromium is not installed (.ci/run installs it)"
)


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium for the module's tests."""
    from playwright.sync_api import sync_playwright

    from dashboards.screenshots import CHROMIUM_ARGS

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
