"""The benchmark's own correctness checks (`make bench`), run small: nothing about speed
is asserted, only that the pipeline's headline values equal the floor's and pandas'."""

import os
import subprocess
import sys
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]


def test_benchmark_at_small_size_agrees_with_the_floor_and_pandas(tmp_path):
    out = tmp_path / "benchmarks.md"
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "KEHA_PSEUDONYM_KEY")}
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench.py"), "--sizes", "20000", "--work", str(tmp_path / "work"), "--out", str(out)],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = out.read_text(encoding="utf-8")
    checks = [line for line in text.splitlines() if line.startswith("| 20,000 | floor |") or line.startswith("| 20,000 | pandas |")]
    assert len(checks) == 2 and all(line.endswith("| yes |") for line in checks), checks
    for measured in ("pipeline, full run from empty", "floor: one DuckDB query", "pandas baseline", "pipeline, incremental"):
        assert f"| 20,000 | {measured}" in text
    for ratio in ("pipeline / floor", "pandas / pipeline", "incremental / full"):
        assert f"| 20,000 | {ratio} |" in text
    assert "cores" in text and "GiB memory" in text
    # the stage timings and the profile of the run are in the report too
    assert "| parse + validate (polars, pandera) |" in text and "(`merge_rows`)" in text
    # the incremental run really ingested the new day's files on top of the history
    con = duckdb.connect(str(tmp_path / "work" / "warehouse_20000" / "maksatus.duckdb"), read_only=True)
    try:
        new_day = con.execute("SELECT file_name, status, rows_valid FROM quality.ingest_log WHERE file_name LIKE '%2023-01-02%' ORDER BY 1").fetchall()
    finally:
        con.close()
    assert [(name, status) for name, status, _ in new_day] == [("asiakaspalaute_2023-01-02.csv", "ingested"), ("maksatuspaatokset_2023-01-02.csv", "ingested")]
    assert all(valid > 0 for *_, valid in new_day)
