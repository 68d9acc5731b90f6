"""Screenshots of the published dashboards and report in headless Chromium (Debian's
`chromium`), e.g. `make screenshots` after `make run`.

usage: python -m dashboards.screenshots [WAREHOUSE_FILE] [OUT_DIR]
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

from dashboards.pages import PAGES
from keha_maksatus.config import DEFAULT_WAREHOUSE, REPO_ROOT
from keha_maksatus.outputs.publish import output_folders
from keha_maksatus.outputs.report import REPORT_NAME

# Headless Chromium on a machine without network or display.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]


def take_screenshots(published: Path, out_dir: Path, browser=None) -> list[Path]:
    """Full-page PNGs of every dashboard page and the report; `browser` is a running
    Playwright browser to use, else one is started."""
    if browser is None:
        chromium = shutil.which("chromium")
        if chromium is None:
            raise SystemExit("Debian's chromium is not installed (apt-get install chromium)")
        with sync_playwright() as playwright:
            started = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                return take_screenshots(published, out_dir, started)
            finally:
                started.close()
    folders = output_folders(published)
    pages = [(folders.dashboards / p.file_name, len(p.figures)) for p in PAGES]
    pages.append((folders.report / f"{REPORT_NAME}.html", 0))
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    try:
        for path, charts in pages:
            page.goto(path.as_uri())
            if charts:
                page.wait_for_function(
                    "n => document.querySelectorAll('.js-plotly-plot .main-svg').length >= n", arg=charts, timeout=30000
                )
            target = out_dir / f"{path.stem}.png"
            page.screenshot(path=str(target), full_page=True)
            written.append(target)
    finally:
        page.close()
    return written


def main() -> None:
    published = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_WAREHOUSE
    out_dir = Path(sys.argv[2]) if len(sys.argv) > 2 else REPO_ROOT / "build" / "screenshots" / "make_run"
    for path in take_screenshots(published, out_dir):
        print(path)


if __name__ == "__main__":
    main()
