"""History group: the figures as of a past date (keha_maksatus.history.as_of), launched with
a date from the launchpad (job `as_of_build`) or by `keha-maksatus run --as-of`."""

import dagster as dg
import duckdb
import polars as pl
from pydantic import Field

from keha_maksatus.history import as_of
from keha_maksatus.outputs.rendering import markdown_text
from pipelines.assets.kpi import rounded_quality_section
from pipelines.metadata import markdown_table
from pipelines.resources import WarehouseResource

FIGURES_AS_OF = "figures_as_of"
# The job that builds it: a name of its own (a job may not share its name with an asset's op).
AS_OF_JOB = "as_of_build"


class AsOfConfig(dg.Config):
    as_of: str = Field(description="The date: extracts dated on or before it are used (2022-06-30 or 30.6.2022)")
    out: str = Field(
        default="",
        description="Path of the DuckDB file to write; empty: beside the published file, e.g. maksatus.as-of-2022-06-30.duckdb",
    )


@dg.asset(
    name=FIGURES_AS_OF,
    group_name="history",
    deps=["ingested_files", "decisions", "feedback"],
    description=(
        "Every KPI table as of a past date, from only the extracts dated on or before it, into a DuckDB file of its own "
        "beside the published one (with its Finnish report); the published warehouse is not touched."
    ),
)
def figures_as_of(context: dg.AssetExecutionContext, config: AsOfConfig, warehouse: WarehouseResource) -> dg.MaterializeResult:
    date = as_of.parse_as_of(config.as_of)
    warehouse.hold_run_lock()
    warehouse.close_working()  # the build attaches the working file from a database of its own
    build = as_of.build_as_of(warehouse.published_path, date, warehouse.settings(), out=config.out or None,
                              run_id=context.run_id, landing=warehouse.landing_dir)
    reader = duckdb.connect(str(build.path), read_only=True)
    try:
        quality = rounded_quality_section(reader)
    finally:
        reader.close()
    metadata = {
        "as_of": build.as_of.isoformat(),
        "data_as_of": build.data_as_of.isoformat(),
        "path": dg.MetadataValue.path(str(build.path)),
        "files_used": len(build.file_ids),
        "files": markdown_table(pl.DataFrame({"file_id": build.file_ids, "file": build.file_names}), max_rows=100),
        "quality_section": markdown_table(quality, max_rows=50),
    }
    for note in build.notes:
        context.log.warning(f"Figures as of {build.as_of.isoformat()}: {note}")
    if build.notes:
        metadata["notes"] = dg.MetadataValue.md("\n".join(f"- {markdown_text(note)}" for note in build.notes))
    if build.report is not None:
        metadata["report"] = dg.MetadataValue.path(str(build.report))
    context.log.info(f"Figures as of {build.as_of.isoformat()} ({len(build.file_ids)} files) in {build.path}")
    return dg.MaterializeResult(metadata=metadata)


figures_as_of_job = dg.define_asset_job(
    AS_OF_JOB,
    selection=dg.AssetSelection.assets("ingested_files", "decisions", "feedback", FIGURES_AS_OF),
    description=(
        "Ingest new exports into the working state, then build every KPI table as of the configured date into a file "
        "of its own (nothing is published)."
    ),
)
