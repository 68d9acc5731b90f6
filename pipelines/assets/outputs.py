"""What people read, built from the published warehouse: the quality-section report,
the dashboards and the Excel/CSV/Parquet exports."""

import dagster as dg

from dashboards.pages import PAGES, build_dashboards
from keha_maksatus.outputs.exports import write_exports
from keha_maksatus.outputs.report import write_report
from pipelines.resources import WarehouseResource


@dg.asset(
    group_name="publish",
    deps=["published_warehouse"],
    description="The agreement's quality-section report in Finnish (laatuosio.md and a standalone laatuosio.html).",
)
def quality_report(warehouse: WarehouseResource) -> dg.MaterializeResult:
    markdown, page = write_report(warehouse.published_path, warehouse.outputs.report)
    return dg.MaterializeResult(
        metadata={
            "markdown": dg.MetadataValue.path(str(markdown)),
            "html": dg.MetadataValue.path(str(page)),
            "report": dg.MetadataValue.md(markdown.read_text(encoding="utf-8")),
        }
    )


@dg.asset(
    group_name="publish",
    deps=["published_warehouse"],
    description="Offline plotly dashboards (plotly.js shipped once beside the pages).",
)
def dashboard_pages(warehouse: WarehouseResource) -> dg.MaterializeResult:
    pages = build_dashboards(warehouse.published_path, warehouse.outputs.dashboards)
    metadata = {page.title: dg.MetadataValue.path(str(path)) for page, path in zip(PAGES, pages)}
    metadata["pages"] = len(pages)
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    group_name="publish",
    deps=["published_warehouse"],
    description="KPI tables as .xlsx (Finnish headers and formats), .csv (; and decimal comma) and Parquet.",
)
def kpi_exports(warehouse: WarehouseResource) -> dg.MaterializeResult:
    files = write_exports(warehouse.published_path, warehouse.outputs.exports)
    return dg.MaterializeResult(
        metadata={"folder": dg.MetadataValue.path(str(warehouse.outputs.exports)), "files": len(files),
                  "workbook": dg.MetadataValue.path(str(files[0]))}
    )
