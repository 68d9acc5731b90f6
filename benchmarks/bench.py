"""The nightly run at scale, against bare DuckDB and pandas (`make bench`).

In one run, on the same files, measures wall time and peak memory (RSS of the whole
process tree) of: the full pipeline through the CLI from an empty state (1M and 10M
decisions, half as many responses), the year-end nowcast on that warehouse as of 30.9.
of its last year (the Nowcaster and the four forecast tables), an incremental nightly
run (one new day's extract on top of the largest history), the floor (one DuckDB query
over the CSV files), and a pandas baseline. Prints a table, checks the pipeline's
headline values against the floor's, and writes docs/benchmarks.md. Not a test: nothing
here asserts speed.

usage: python benchmarks/bench.py [--sizes 1000000 10000000] [--work build/bench]
       python benchmarks/bench.py --nowcast-only [--sizes ...]   (the nowcast alone, on the
       warehouses an earlier make bench left in --work; prints, writes nothing)
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SEED = 10
NEW_DAY = dt.date(2023, 1, 2)


@dataclass
class Measure:
    label: str
    seconds: float
    peak_mib: float
    output: str = ""


def tree_rss_kib(pid: int) -> tuple[int, int]:
    """Resident memory of a process and all its descendants, from /proc: the sum of their
    current RSS, and the largest high-water mark (VmHWM) of any one of them, which catches
    a single process's peak between two samples."""
    total, high_water, stack = 0, 0, [pid]
    while stack:
        current = stack.pop()
        try:
            with open(f"/proc/{current}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                    elif line.startswith("VmHWM:"):
                        high_water = max(high_water, int(line.split()[1]))
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    stack += [int(c) for c in children.read().split()]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total, high_water


def measure(label: str, command: list[str], env: dict | None = None) -> Measure:
    """Run a command; wall time and the peak RSS of its process tree (sampled every 50 ms,
    and no less than the high-water mark of any one process in it)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, *tree_rss_kib(process.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = process.communicate()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"{label} failed ({process.returncode}):\n{output[-3000:]}")
    return Measure(label, seconds, peak / 1024, output)


def sample_data(work: Path, decisions: int) -> tuple[Path, Measure | None]:
    folder = work / f"data_{decisions}"
    marker = folder / ".complete"
    if marker.exists():
        return folder, None
    shutil.rmtree(folder, ignore_errors=True)
    generated = measure(
        f"generate {decisions:,} decisions",
        [str(BIN / "keha-maksatus"), "sample", "--out", str(folder), "--decisions", str(decisions),
         "--feedback", str(decisions // 2), "--csv-only", "--no-bad-rows", "--seed", str(SEED)],
    )
    marker.touch()
    return folder, generated


def write_new_day(history: Path, landing: Path) -> int:
    """One new day's extracts: a fifth of the applications still pending in the newest
    history extract get decided, and new applications and responses arrive."""
    newest = sorted(history.glob("maksatuspaatokset_*.csv"))[-1]
    pending = (
        pl.scan_csv(newest, separator=";", infer_schema=False)
        .filter(pl.col("paatetty").is_null())
        .collect()
    )
    decided = pending.sample(fraction=0.2, seed=SEED).with_columns(
        pl.lit(f"{NEW_DAY.day}.{NEW_DAY.month}.{NEW_DAY.year}").alias("paatetty"), pl.lit("myönteinen").alias("paatos"),
        pl.col("haettu_eur").alias("maksettu_eur"),
    )
    new = new_applications("N", NEW_DAY, pending.columns)
    day = pl.concat([decided, new])
    day.write_csv(landing / f"maksatuspaatokset_{NEW_DAY.isoformat()}.csv", separator=";")
    responses = pl.DataFrame({
        "vastaus_id": [f"N{i:08d}" for i in range(2500)], "kysely": ["kohtaaminen"] * 2500, "palvelu": ["maksatus"] * 2500,
        "vastattu": [f"{NEW_DAY.day}.{NEW_DAY.month}.{NEW_DAY.year} 10:00"] * 2500, "arvosana": ["4"] * 2500,
        "tukimuoto": [None] * 2500, "yksikko": [None] * 2500, "hakemus_id": [None] * 2500, "kieli": ["fi"] * 2500, "vapaa_teksti": [None] * 2500,
    }, schema={c: pl.String for c in ["vastaus_id", "kysely", "palvelu", "vastattu", "arvosana", "tukimuoto", "yksikko", "hakemus_id", "kieli", "vapaa_teksti"]})
    responses.write_csv(landing / f"asiakaspalaute_{NEW_DAY.isoformat()}.csv", separator=";")
    return day.height + responses.height


def new_applications(prefix: str, day: dt.date, columns: list[str], count: int = 5000) -> pl.DataFrame:
    """`count` new pending applications received on `day`, ids prefix + a number."""
    width = 8 - len(prefix) + 1
    return pl.DataFrame({
        "hakemus_id": [f"{prefix}{i:0{width}d}" for i in range(count)], "tukimuoto": ["palkkatuki"] * count, "yksikko": ["TE-UUS"] * count,
        "saapunut": [f"{day.day}.{day.month}.{day.year}"] * count, "paatetty": [None] * count, "paatos": [None] * count,
        "haettu_eur": ["1000,00"] * count, "maksettu_eur": [None] * count, "asiakastunnus": ["0737546-2"] * count, "taydennys_pv": [None] * count,
    }, schema={c: pl.String for c in columns})


def pipeline_values(published: Path, year: int) -> tuple[float, int, float, int]:
    con = duckdb.connect(str(published), read_only=True)
    try:
        rows = dict(
            (indicator, (value, n))
            for indicator, value, n in con.execute(
                "SELECT indicator, value, n FROM kpi.quality_section WHERE period_label = ?", [f"1-12/{year}"]
            ).fetchall()
        )
    finally:
        con.close()
    return (*rows["maksatus_kasittelyaika_pv"], *rows["maksatus_asiakastyytyvaisyys"])


FLOOR_SCRIPT = """
import duckdb, glob, sys
landing, year = sys.argv[1], int(sys.argv[2])
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
files = {k: sorted(glob.glob(f"{landing}/{p}_*.csv")) for k, p in (("decision_files", "maksatuspaatokset"), ("feedback_files", "asiakaspalaute"))}
print(*con.execute(open(sys.argv[3]).read(), {**files, "year": year}).fetchall()[0])
"""


# The nowcast's own time, from inside the process (without Python's start and imports).
NOWCAST_SCRIPT = """
import datetime as dt, sys, time, duckdb
from keha_maksatus.config import load_settings
from keha_maksatus.forecast import tables
con = duckdb.connect(sys.argv[1], read_only=True)
as_of, settings = dt.date.fromisoformat(sys.argv[2]), load_settings()
start = time.perf_counter()
nowcaster = tables.Nowcaster(con, as_of, as_of)
counts = (len(tables.forecast_rows(nowcaster, settings)), len(tables.fan_rows(nowcaster)),
          tables.pending_at_risk(con, nowcaster).height, len(tables.what_if_rows(con, nowcaster, settings)))
print(time.perf_counter() - start, *counts)
"""


def nowcast(published: Path, year: int) -> Measure:
    """The nowcast as of 30.9. of the data's last year (the scale data ends at 31.12.,
    when no period runs): Nowcaster and the four forecast tables' builders. The time is
    measured inside the process; the peak memory is the whole process's."""
    as_of = dt.date(year, 9, 30)
    run = measure("nowcast", [sys.executable, "-c", NOWCAST_SCRIPT, str(published), as_of.isoformat()])
    seconds, forecasts, fan, pending, what_if = run.output.split()[-5:]
    label = (f"nowcast as of {as_of.day}.{as_of.month}.{as_of.year} (Nowcaster + forecast, fan, pending_at_risk, what-if: "
             f"{int(forecasts)}, {int(fan)}, {int(pending):,}, {int(what_if)} rows)")
    return Measure(label, float(seconds), run.peak_mib, run.output)


def dagster_home(work: Path) -> Path:
    """The benchmark's own Dagster instance (a copy of the repo's dagster.yaml), so that
    its runs are recorded as `make run`'s are, but not in the repo's run history."""
    home = work / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", home)
    return home


def run_size(work: Path, decisions: int, results: list, checks: list) -> Path:
    data, generated = sample_data(work, decisions)
    if generated:
        results.append((decisions, generated))
    year = max(int(p.stem.split("_")[1][:4]) for p in data.glob("maksatuspaatokset_*.csv"))
    warehouse = work / f"warehouse_{decisions}" / "maksatus.duckdb"
    shutil.rmtree(warehouse.parent, ignore_errors=True)
    env = {**os.environ, "KEHA_PSEUDONYM_KEY": "benchmark-key"}
    env["DAGSTER_HOME"] = str(dagster_home(work))
    full = measure("pipeline, full run from empty", [str(BIN / "keha-maksatus"), "run", "--landing", str(data), "--warehouse", str(warehouse)], env)
    floor = measure("floor: one DuckDB query", [sys.executable, "-c", FLOOR_SCRIPT, str(data), str(year), str(REPO / "benchmarks" / "floor.sql")])
    pandas = measure("pandas baseline", [sys.executable, str(REPO / "benchmarks" / "pandas_baseline.py"), str(data), str(year)])
    results += [(decisions, full), (decisions, nowcast(warehouse, year)), (decisions, floor), (decisions, pandas)]

    ours = pipeline_values(warehouse, year)
    floor_values = tuple(float(v) for v in floor.output.split()[-4:])
    pandas_values = tuple(float(v) for v in pandas.output.split()[-4:])
    for name, other in (("floor", floor_values), ("pandas", pandas_values)):
        same = all(abs(a - b) <= 1e-9 * max(1.0, abs(b)) for a, b in zip(ours, other))
        checks.append((decisions, name, ours, other, same))
    return data


def incremental(work: Path, data: Path, decisions: int, results: list) -> None:
    """One new day's extract on top of the history already ingested by the full run."""
    landing = work / f"landing_incremental_{decisions}"
    shutil.rmtree(landing, ignore_errors=True)
    landing.mkdir(parents=True)
    for path in data.glob("*.csv"):
        (landing / path.name).symlink_to(path.resolve())
    rows = write_new_day(data, landing)
    warehouse = work / f"warehouse_{decisions}" / "maksatus.duckdb"
    env = {**os.environ, "KEHA_PSEUDONYM_KEY": "benchmark-key"}
    env["DAGSTER_HOME"] = str(dagster_home(work))
    run = measure(f"pipeline, incremental ({rows:,} new rows)", [str(BIN / "keha-maksatus"), "run", "--landing", str(landing), "--warehouse", str(warehouse)], env)
    results.append((decisions, run))


NIGHTS = 10


def nightly_history(work: Path, data: Path, decisions: int) -> str:
    """The state's size after one nightly extract and after NIGHTS, on top of the history of
    `data`: each night re-sends every application still pending (unchanged), decides a fifth
    of them and brings 5000 new ones, so the rows that change are known. A Markdown table."""
    landing = work / f"landing_nightly_{decisions}"
    shutil.rmtree(landing, ignore_errors=True)
    landing.mkdir(parents=True)
    for path in data.glob("*.csv"):
        os.link(path, landing / path.name)  # a fresh state: links would be skipped, never followed
    warehouse = work / f"warehouse_nightly_{decisions}" / "maksatus.duckdb"
    shutil.rmtree(warehouse.parent, ignore_errors=True)
    env = {**os.environ, "KEHA_PSEUDONYM_KEY": "benchmark-key", "DAGSTER_HOME": str(dagster_home(work))}
    command = [str(BIN / "keha-maksatus"), "run", "--landing", str(landing), "--warehouse", str(warehouse)]
    subprocess.run(command, env=env, check=True, capture_output=True)
    working = warehouse.parent / f".{warehouse.name}.work" / "warehouse.duckdb"
    base, _ = used_bytes(working)
    newest = sorted(data.glob("maksatuspaatokset_*.csv"))[-1]
    pending = pl.scan_csv(newest, separator=";", infer_schema=False).filter(pl.col("paatetty").is_null()).collect()
    lines = ["| after | rows sent | rows changed or new | versions kept (replaced) | state, used (MiB) | growth since night 1 (MiB) |",
             "|---|---:|---:|---:|---:|---:|"]
    sent_total = changed_total = 0
    first = None
    for night in range(1, NIGHTS + 1):
        day = NEW_DAY + dt.timedelta(days=night - 1)
        text = f"{day.day}.{day.month}.{day.year}"
        decided = pending.sample(fraction=0.2, seed=SEED + night)
        still = pending.join(decided.select("hakemus_id"), on="hakemus_id", how="anti")
        new = new_applications(f"N{night:02d}", day, pending.columns)
        decided = decided.with_columns(pl.lit(text).alias("paatetty"), pl.lit("myönteinen").alias("paatos"),
                                       pl.col("haettu_eur").alias("maksettu_eur"))
        extract = pl.concat([still, decided, new])
        extract.write_csv(landing / f"maksatuspaatokset_{day.isoformat()}.csv", separator=";")
        subprocess.run(command, env=env, check=True, capture_output=True)
        sent_total += extract.height
        changed_total += decided.height + new.height
        pending = pl.concat([still, new])
        size, replaced = used_bytes(working)
        first = first or size
        if night in (1, NIGHTS):
            lines.append(f"| {night} night{'s' if night > 1 else ''} | {sent_total:,} | {changed_total:,} | {replaced:,} | "
                         f"{size / 2**20:,.1f} | {(size - first) / 2**20:,.1f} |")
        print(f"night {night}: state {size / 2**20:.1f} MiB", flush=True)
    lines += ["", f"State before the nights: {base / 2**20:,.1f} MiB. A full copy of the state per night would have added "
              f"{(NIGHTS - 1) * first / 2**20:,.0f} MiB over nights 2-{NIGHTS}; the versions added "
              f"{(size - first) / 2**20:,.1f} MiB ({(size - first) / ((NIGHTS - 1) * first):.1%} of that)."]
    return "\n".join(lines)


def used_bytes(working: Path) -> tuple[int, int]:
    """The working file's used blocks in bytes (the file itself grows in steps and reuses
    freed blocks) and the count of replaced versions."""
    con = duckdb.connect(str(working), read_only=True)
    try:
        block_size, used = con.execute("SELECT block_size, used_blocks FROM pragma_database_size()").fetchall()[0]
        replaced = con.execute("SELECT count(*) FROM history.replaced_decisions").fetchall()[0][0]
    finally:
        con.close()
    return block_size * used, replaced


def machine() -> str:
    with open("/proc/meminfo") as meminfo:
        total_kib = int(next(line.split()[1] for line in meminfo if line.startswith("MemTotal")))
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "unknown CPU")
    return f"{os.cpu_count()} cores ({cpu}), {total_kib / 1024 ** 2:.1f} GiB memory"


def table(results: list, checks: list) -> str:
    lines = ["| decisions | what | wall time (s) | peak RSS (MiB) |", "|---:|---|---:|---:|"]
    for decisions, m in results:
        lines.append(f"| {decisions:,} | {m.label} | {m.seconds:.1f} | {m.peak_mib:,.0f} |")
    lines += ["", "| decisions | ratio | value |", "|---:|---|---:|"]
    by = {(d, m.label.split(",")[0].split(":")[0]): m for d, m in results}
    for decisions in sorted({d for d, _ in results}):
        full = next((m for d, m in results if d == decisions and m.label.startswith("pipeline, full")), None)
        floor = by.get((decisions, "floor"))
        pandas = by.get((decisions, "pandas baseline"))
        if full and floor:
            lines.append(f"| {decisions:,} | pipeline / floor | {full.seconds / floor.seconds:.1f}× |")
        if full and pandas:
            lines.append(f"| {decisions:,} | pandas / pipeline | {pandas.seconds / full.seconds:.2f}× |")
        inc = next((m for d, m in results if d == decisions and m.label.startswith("pipeline, incremental")), None)
        if full and inc:
            lines.append(f"| {decisions:,} | incremental / full | {inc.seconds / full.seconds:.0%} |")
    lines += ["", "| decisions | compared with | pipeline (days, n, score, n) | other | equal |", "|---:|---|---|---|---|"]
    for decisions, name, ours, other, same in checks:
        lines.append(f"| {decisions:,} | {name} | {ours[0]:.6f}, {ours[1]}, {ours[2]:.6f}, {ours[3]} | "
                     f"{other[0]:.6f}, {int(other[1])}, {other[2]:.6f}, {int(other[3])} | {'yes' if same else 'NO'} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--work", type=Path, default=REPO / "build" / "bench")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    parser.add_argument("--nowcast-only", action="store_true", help="time the nowcast on the warehouses already in --work")
    args = parser.parse_args()
    if args.nowcast_only:
        return nowcast_only(args.work, args.sizes)
    args.work.mkdir(parents=True, exist_ok=True)
    results, checks = [], []
    data = None
    for size in sorted(args.sizes):
        print(f"== {size:,} decisions", flush=True)
        data = run_size(args.work, size, results, checks)
    incremental(args.work, data, max(args.sizes), results)
    print("== history: the state after nightly extracts", flush=True)
    growth = nightly_history(args.work, args.work / f"data_{min(args.sizes)}", min(args.sizes))
    text = table(results, checks)
    stages = measure("stages", [sys.executable, str(REPO / "benchmarks" / "stages.py"), str(data)]).output.strip()
    profiled = measure("profile", [sys.executable, str(REPO / "benchmarks" / "profile_run.py"), str(data)]).output
    profile = "\n".join(line for line in profiled.splitlines() if line.startswith("|"))
    print(text)
    args.out.write_text(
        "# Benchmarks\n\n"
        f"Measured by `make bench` ({Path(__file__).relative_to(REPO)}) on {dt.date.today().isoformat()}, "
        f"on {machine()}. Wall time and peak resident memory of the whole process tree; "
        "each row a single run, all on the same files in one session (the machine is shared and noisy: "
        "compare ratios, not absolute seconds).\n\n"
        "- *pipeline, full run*: `keha-maksatus run` from an empty state (ingest, validation, "
        "pseudonymisation, KPIs, publish, report, dashboards, exports).\n"
        "- *nowcast*: the year-end nowcast on the full run's warehouse as of 30.9. of its last year "
        "(`tables.Nowcaster` and the builders of kpi.forecast, kpi.forecast_fan, kpi.pending_at_risk and "
        "kpi.forecast_what_if), timed inside its process; peak memory of the whole process.\n"
        "- *incremental*: the same command with one new day's extracts added to the largest history.\n"
        "- *floor*: one DuckDB query over the same CSV files for the two headline KPIs of 1-12 of the "
        "latest year, no validation (`benchmarks/floor.sql`).\n"
        "- *pandas baseline*: `benchmarks/pandas_baseline.py`, what an analyst would write.\n\n"
        + text + "\n\n"
        f"## History: the state after {NIGHTS} nightly extracts ({min(args.sizes):,} decisions)\n\n"
        "Every version of every row is kept (history.replaced_decisions), a row sent again unchanged is no new version. "
        f"On top of the {min(args.sizes):,}-decision history, {NIGHTS} nightly extracts each re-send every pending application, "
        "decide a fifth of them and bring 5000 new ones (`nightly_history` in benchmarks/bench.py):\n\n" + growth + "\n\n"
        f"## Where the time goes ({max(args.sizes):,} decisions)\n\n"
        "The library's stages timed one by one without Dagster and without overlap (`python benchmarks/stages.py "
        f"{data.relative_to(REPO) if data.is_relative_to(REPO) else data}`):\n\n" + stages + "\n\n"
        "The full run through the CLI profiled with pyinstrument (`make profile`, call tree in "
        "`build/bench/profile.html`). pyinstrument samples the main thread, which stores each file "
        "while a background thread reads and validates the next one; the main thread's wait for it "
        "is the background work that did not overlap:\n\n" + profile + "\n",
        encoding="utf-8",
    )
    print(f"\nwritten to {args.out}")
    return 0 if all(same for *_, same in checks) else 1


def nowcast_only(work: Path, sizes: list[int]) -> int:
    """Time the nowcast alone on the warehouses an earlier full bench built in `work`."""
    results = []
    for size in sorted(sizes):
        published = work / f"warehouse_{size}" / "maksatus.duckdb"
        data = work / f"data_{size}"
        if not published.exists() or not data.exists():
            raise SystemExit(f"no warehouse of {size:,} decisions in {work}: run make bench (or bench.py --sizes {size}) first")
        year = max(int(p.stem.split("_")[1][:4]) for p in data.glob("maksatuspaatokset_*.csv"))
        results.append((size, nowcast(published, year)))
    print("| decisions | what | wall time (s) | peak RSS (MiB) |\n|---:|---|---:|---:|")
    for size, m in results:
        print(f"| {size:,} | {m.label} | {m.seconds:.1f} | {m.peak_mib:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
