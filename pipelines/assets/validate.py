"""Checks on what validation let through or held back (the current-state assets
themselves are made by the ingest step, pipelines/assets/ingest.py)."""


import dagster as dg

from keha_maksatus.ingest.schemas import INSTRUMENTS
from pipelines.metadata import markdown_table
from pipelines.resources import WarehouseResource


@dg.asset_check(
    asset="ingested_files",
    description="For every file: rows read = rows valid + rows rejected, each rejected row is in the quarantine, and the current state holds no more of its rows than were valid (none of a file held back).",
)
def rows_accounted_for(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        broken = con.sql(
            """
            SELECT l.file_name, l.status, l.rows_read, l.rows_valid, l.rows_rejected,
                   coalesce(c.n, 0) AS rows_in_current_state, coalesce(q.n, 0) AS rows_in_quarantine
            FROM quality.ingest_log l
            LEFT JOIN (
                SELECT file_id, count(*) n FROM (SELECT file_id FROM core.decisions UNION ALL SELECT file_id FROM core.feedback) GROUP BY 1
            ) c USING (file_id)
            LEFT JOIN (SELECT file_id, count(DISTINCT line) n FROM quality.quarantine GROUP BY 1) q USING (file_id)
            WHERE l.rows_read <> l.rows_valid + l.rows_rejected
               OR l.rows_rejected <> coalesce(q.n, 0)
               OR coalesce(c.n, 0) > CASE WHEN l.status = 'ingested' THEN l.rows_valid ELSE 0 END
            """
        ).pl()
    return dg.AssetCheckResult(
        passed=broken.is_empty(), severity=dg.AssetCheckSeverity.ERROR,
        metadata={"files_not_balancing": broken.height, "details": markdown_table(broken)},
    )


@dg.asset_check(asset="decisions", description="Instrument and office codes outside the known lists (kept, not rejected).")
def unlisted_codes(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    settings = warehouse.settings()
    with warehouse.connect() as con:
        unknown = con.sql(
            """
            SELECT 'tukimuoto' AS column_name, tukimuoto AS code, count(*) AS n FROM core.decisions
            WHERE NOT list_contains(?, tukimuoto) GROUP BY ALL
            UNION ALL
            SELECT 'yksikko', yksikko, count(*) FROM core.decisions
            WHERE NOT list_contains(?, yksikko) GROUP BY ALL
            ORDER BY n DESC
            """,
            params=[list(INSTRUMENTS), list(settings.offices)],
        ).pl()
    return dg.AssetCheckResult(
        passed=unknown.is_empty(), severity=dg.AssetCheckSeverity.WARN,
        metadata={"unlisted_codes": unknown.height, "rows_with_unlisted_codes": int(unknown["n"].sum()), "codes": markdown_table(unknown)},
    )
