"""Where a full run's time goes: the library's stages timed one by one, without Dagster
and without the pipeline's overlap (the real run prepares the next file while storing this one).

usage: python benchmarks/stages.py LANDING   (e.g. build/bench/data_10000000 after make bench)
"""

import datetime as dt
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from keha_maksatus import kpi, warehouse
from keha_maksatus.config import load_settings
from keha_maksatus.forecast.tables import build_forecast_tables
from keha_maksatus.ingest import landing
from keha_maksatus.ingest.privacy import CustomerKeys, mask_column, pseudonymise
from keha_maksatus.ingest.readers import read_export
from keha_maksatus.ingest.schemas import kind_of_file
from keha_maksatus.ingest.store import _merge_valid_rows
from keha_maksatus.ingest.validation import validate_export
from keha_maksatus.outputs.publish import publish


def main() -> None:
    folder = Path(sys.argv[1])
    settings = load_settings()
    totals: dict[str, float] = defaultdict(float)
    work = Path(tempfile.mkdtemp(prefix="stages-"))
    con = warehouse.connect(work / ".work")

    def timed(stage, fn, *args):
        start = time.perf_counter()
        result = fn(*args)
        totals[stage] += time.perf_counter() - start
        return result

    customers = CustomerKeys(con)
    for file_id, item in enumerate(landing.list_landing_files(folder), start=1):
        kind = kind_of_file(item.name)
        timed("hash files", landing.content_hash, item.path)
        read = timed("read CSV (polars)", read_export, item.path)
        result = timed("parse + validate (polars, pandera)", validate_export, read.frame, kind, landing.extract_date(item.name))
        del read
        if kind.name == "feedback":
            result.valid = timed("mask free text (polars)", mask_column, result.valid, "vapaa_teksti")
        else:
            result.valid = timed("pseudonymise customer ids (HMAC in DuckDB)", pseudonymise, result.valid, "asiakastunnus", b"stages")
        con.execute("INSERT INTO quality.ingest_log (file_id, file_name, name_order, kind, content_sha256, status, ingested_at) VALUES (?, ?, ?, ?, ?, 'ingested', now()::TIMESTAMP)",
                    [file_id, item.logged_name, item.name_order, kind.name, str(file_id)])
        timed("merge into current state (DuckDB)", _merge_valid_rows, con, kind.name, file_id, item.logged_name, result.valid, customers)
    customers.drop()
    timed("KPI tables (DuckDB)", kpi.build_kpis, con, settings)
    timed("forecast tables (nowcast)", build_forecast_tables, con, settings)
    timed("publish (checkpoint, copy, replace)", publish, con, warehouse.working_path(work / ".work"), work / "maksatus.duckdb")
    con.close()
    shutil.rmtree(work)
    total = sum(totals.values())
    print("| stage | seconds | share |\n|---|---:|---:|")
    for stage, seconds in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"| {stage} | {seconds:.1f} | {seconds / total:.0%} |")
    print(f"| total | {total:.1f} | |")


if __name__ == "__main__":
    main()
