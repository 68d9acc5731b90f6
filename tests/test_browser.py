"""Real headless Chromium: the dashboards and the report from disk, and the Dagster UI."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from dashboards.pages import PAGES
from dashboards.screenshots import take_screenshots
from keha_maksatus.config import DEFAULT_LANDING
from keha_maksatus.outputs.publish import output_folders
from keha_maksatus.outputs.report import REPORT_NAME
from keha_maksatus.state import warehouse_files
from pipelines.definitions import defs

from conftest import needs_chromium

REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPO / "build" / "screenshots"

pytestmark = needs_chromium



@pytest.fixture(scope="module")
def sample_outputs(sample_warehouse) -> Path:
    return sample_warehouse


def open_page(browser, url: str, viewport=(1300, 900)):
    page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    return page, errors


@pytest.mark.parametrize("page_def", PAGES, ids=[p.file_name for p in PAGES])
def test_dashboard_page_renders_its_charts(sample_outputs, browser, page_def):
    path = output_folders(sample_outputs).dashboards / page_def.file_name
    page, errors = open_page(browser, path.as_uri())
    try:
        page.wait_for_function(
            "n => document.querySelectorAll('.js-plotly-plot .main-svg').length >= n", arg=len(page_def.figures), timeout=20000
        )
        plots = page.locator(".js-plotly-plot")
        assert plots.count() == len(page_def.figures)
        for index in range(plots.count()):  # every chart drew something: traces or indicators
            assert plots.nth(index).locator(".plot .trace, .indicatorlayer .trace, g.indicator, .barlayer .point, .scatterlayer .trace").count() > 0
        assert page.title().startswith(page_def.title)
        assert errors == []
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{Path(page_def.file_name).stem}.png"), full_page=True)
    finally:
        page.close()


def test_report_page_loads_offline(sample_outputs, browser):
    path = output_folders(sample_outputs).report / f"{REPORT_NAME}.html"
    page, errors = open_page(browser, path.as_uri())
    try:
        assert page.locator("h1").inner_text() == "Maksatuksen palvelukyky ja laatu"
        assert page.locator("table").count() >= 5
        assert "Vuosi 2022" in page.inner_text("body")
        assert errors == []
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "laatuosio.png"), full_page=True)
    finally:
        page.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def dagster_webserver(home: Path):
    """The real webserver on a free loopback port over the instance in `home`; stopped
    with SIGTERM at the end, which it must obey."""
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO, env={**os.environ, "DAGSTER_HOME": str(home)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/server_info", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, server.stdout.read().decode()
            assert time.time() < deadline, "webserver did not answer in 90 s"
            time.sleep(0.5)
        yield base
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            raise AssertionError("the webserver did not stop on SIGTERM")
    assert code in (0, -signal.SIGTERM)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{base}/server_info", timeout=2)


def dagster_home(folder: Path) -> Path:
    folder.mkdir()
    (folder / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return folder


def test_dagster_ui_lists_the_assets_and_checks(browser, tmp_path):
    with dagster_webserver(dagster_home(tmp_path / "dagster_home")) as base:
        specs = list(defs.resolve_all_asset_specs())
        for group in sorted({spec.group_name for spec in specs}):
            page, errors = open_page(browser, f"{base}/locations/keha_maksatus/asset-groups/{group}", viewport=(1600, 4000))
            try:
                expected = [s.key.to_user_string() for s in specs if s.group_name == group]
                for name in expected:
                    page.get_by_text(name, exact=True).first.wait_for(timeout=30000)
                if group == "kpi":
                    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(SCREENSHOTS / "dagster_kpi_group.png"))
            finally:
                page.close()

        checks_by_asset = {}
        for check in defs.resolve_asset_graph().asset_check_keys:
            checks_by_asset.setdefault(check.asset_key.to_user_string(), []).append(check.name)
        assert sum(len(v) for v in checks_by_asset.values()) == 9  # 7 on ingest, validate and kpi (closed_period_changed among them), 2 on the forecast
        assert set(checks_by_asset["forecast"]) == {"satisfaction_on_track", "processing_time_on_track"}
        for asset, names in checks_by_asset.items():
            page, _ = open_page(browser, f"{base}/assets/{asset}?view=checks")
            try:
                for name in names:
                    page.get_by_text(name, exact=True).first.wait_for(timeout=30000)
            finally:
                page.close()


def test_failed_run_keeps_the_warehouse_and_the_ui_says_why(browser, tmp_path):
    home = dagster_home(tmp_path / "dagster_home")
    landing, published = tmp_path / "landing", tmp_path / "wh" / "maksatus.duckdb"
    shutil.copytree(DEFAULT_LANDING, landing)
    env = {**os.environ, "DAGSTER_HOME": str(home), "KEHA_PSEUDONYM_KEY": "ui-test"}
    command = [str(Path(sys.executable).parent / "keha-maksatus"), "run", "--landing", str(landing), "--warehouse", str(published)]
    assert subprocess.run(command, env=env, capture_output=True).returncode == 0
    before = published.read_bytes()
    shutil.rmtree(warehouse_files(published).state_dir)  # the working state is lost ...
    for path in landing.glob("maksatuspaatokset_2021*"):  # ... and a year of exports with it
        path.unlink()
    failed = subprocess.run(command, env=env, capture_output=True, text=True)
    assert failed.returncode == 1 and published.read_bytes() == before
    run_id = re.search(r"Dagster run ([0-9a-f-]{36})", failed.stderr)[1]

    with dagster_webserver(home) as base:
        page, _ = open_page(browser, f"{base}/runs/{run_id}?logs=type:ASSET_CHECK_EVALUATION", viewport=(1600, 1200))
        try:
            page.get_by_text("markedly less data", exact=False).first.wait_for(timeout=30000)
            text = page.inner_text("body")
            # judged in the KPI step: the log names the check and the asset it blocked
            assert "Failure" in text and "Check enough_data_to_publish failed for materialization of quality_section" in text
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "dagster_failed_run.png"))
        finally:
            page.close()


def test_make_screenshots_pictures_every_page(sample_outputs, browser, tmp_path):
    written = take_screenshots(sample_outputs, tmp_path / "shots", browser)
    assert [p.name for p in written] == [f"{Path(p.file_name).stem}.png" for p in PAGES] + [f"{REPORT_NAME}.png"]
    assert all(p.stat().st_size > 20_000 for p in written)
