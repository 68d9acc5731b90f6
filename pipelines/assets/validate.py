"""Validate group: the current state of every application and response, and the
checks on what validation let through or held back."""


import dagster as dg

from keha_maksatus import warehouse as wh
from keha_maksatus.schemas import INSTRUMENTS
from pipelines.metadata import markdown_table, table_metadata
from pipelines.resources import WarehouseResource


def _current_state_asset(kind: str, description: str):
    @dg.asset(name=kind, group_name="validate", deps=["ingested_files"], description=description)
    def _asset(warehouse: WarehouseResource) -> dg.MaterializeResult:
        with warehouse.connect() as con:
            wh.merge_current_state(con, kind)
            metadata = table_metadata(con, f"core.{kind}")
            rejected = con.execute(
                "SELECT count(DISTINCT (file_id, line)) FROM state.ingest.quarantine q JOIN state.ingest.log l USING (file_id) WHERE l.kind = ?",
                [kind],
            ).fetchall()[0][0]
        return dg.MaterializeResult(metadata={**metadata, "rows_in_quarantine_all_time": rejected})

    return _asset


decisions = _current_state_asset(
    "decisions", "Payment applications in their latest valid state (core.decisions): a later extract replaces an earlier row."
)
feedback = _current_state_asset("feedback", "Survey responses in their latest valid state (core.feedback).")


@dg.asset_check(asset="ingested_files", description="For every file: rows read = rows valid + rows rejected, and the stored rows agree.")
def rows_accounted_for(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        broken = con.sql(
            """
            SELECT l.file_name, l.rows_read, l.rows_valid, l.rows_rejected,
                   coalesce(d.n, 0) + coalesce(f.n, 0) AS stored_valid, coalesce(q.n, 0) AS stored_rejected
            FROM state.ingest.log l
            LEFT JOIN (SELECT file_id, count(*) n FROM state.staging.decisions GROUP BY 1) d USING (file_id)
            LEFT JOIN (SELECT file_id, count(*) n FROM state.staging.feedback GROUP BY 1) f USING (file_id)
            LEFT JOIN (SELECT file_id, count(DISTINCT line) n FROM state.ingest.quarantine GROUP BY 1) q USING (file_id)
            WHERE l.rows_read <> l.rows_valid + l.rows_rejected
               OR l.rows_valid <> coalesce(d.n, 0) + coalesce(f.n, 0)
               OR l.rows_rejected <> coalesce(q.n, 0)
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
