"""Profile one full pipeline run (`make profile`): `keha-maksatus run` from an empty state
on the largest benchmark data, under pyinstrument (sampling, main thread).

Writes build/bench/profile.html (the interactive call tree) and prints where the main
thread's time goes, largest first. In the real run the next file is read and
validated in a background thread, which pyinstrument does not sample: time the main
thread spends waiting for it shows as `one_ahead`.

usage: python benchmarks/profile_run.py [LANDING]   (default build/bench/data_10000000, from make bench)
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from pyinstrument import Profiler

REPO = Path(__file__).resolve().parents[1]
# Where the main thread's time is reported: these frames, each counted once (not nested).
STAGES = {
    "merge_rows": "merge rows into the current state and its versions (DuckDB compare, delete + insert)",
    "CustomerKeys.add": "pseudonymise customer ids (HMAC-SHA256 in DuckDB, keys)",
    "one_ahead": "wait for the background thread (hash, read, validate the next file)",
    "kpi_tables": "KPI tables (DuckDB)",
    "published_warehouse": "publish (checkpoint, copy, fsync, replace)",
    "dashboard_pages": "dashboards (plotly)",
    "kpi_exports": "exports (xlsx, csv, parquet)",
    "quality_report": "quality report",
    "open_instance": "Dagster instance (run history in SQLite)",
    "_find_and_load": "imports",
}


def main() -> int:
    landing = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "build" / "bench" / "data_10000000"
    if not landing.is_dir():
        raise SystemExit(f"{landing} does not exist: run make bench first (it writes the benchmark data)")
    os.environ.setdefault("KEHA_PSEUDONYM_KEY", "benchmark-key")
    out = REPO / "build" / "bench" / "profile.html"
    work = Path(tempfile.mkdtemp(prefix="keha-profile-"))
    os.environ["DAGSTER_HOME"] = str(work)  # a throwaway instance, not the repo's run history
    shutil.copy(REPO / "dagster.yaml", work)
    profiler = Profiler(interval=0.005)
    profiler.start()
    try:
        from pipelines.cli import main as cli_main

        code = cli_main(["run", "--landing", str(landing), "--warehouse", str(work / "maksatus.duckdb")])
    finally:
        profiler.stop()
        shutil.rmtree(work, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(profiler.output_html(), encoding="utf-8")
    session = profiler.last_session
    total = session.duration
    frames = {}

    def visit(frame) -> None:
        name = f"{frame.class_name}.{frame.function}" if frame.class_name else frame.function
        name = name if name in STAGES else frame.function
        if name in STAGES:
            frames[name] = frames.get(name, 0.0) + frame.time
            return
        for child in frame.children:
            visit(child)

    visit(session.root_frame())
    print(f"\nprofile of `keha-maksatus run` on {landing}: {total:.1f} s wall, written to {out}")
    print("| where the main thread's time goes | seconds | share |\n|---|---:|---:|")
    for name, seconds in sorted(frames.items(), key=lambda kv: -kv[1]):
        print(f"| {STAGES[name]} (`{name}`) | {seconds:.1f} | {seconds / total:.0%} |")
    rest = total - sum(frames.values())
    print(f"| everything else (Dagster steps and checks, logging, file bookkeeping) | {rest:.1f} | {rest / total:.0%} |")
    return code


if __name__ == "__main__":
    sys.exit(main())
