"""Helpers that turn query results into Dagster metadata."""

from __future__ import annotations

import dagster as dg
import duckdb
import polars as pl

from keha_maksatus.outputs.rendering import markdown_text


def markdown_table(frame: pl.DataFrame, max_rows: int = 20) -> dg.MetadataValue:
    if frame.is_empty():
        return dg.MetadataValue.md("(no rows)")
    shown = frame.head(max_rows)
    lines = ["| " + " | ".join(shown.columns) + " |", "|" + "---|" * len(shown.columns)]
    for row in shown.iter_rows():
        # Codes and file names from the input are shown as text, never as markup.
        lines.append("| " + " | ".join("" if v is None else (f"{v:.2f}" if isinstance(v, float) else markdown_text(str(v))) for v in row) + " |")
    if frame.height > max_rows:
        lines.append(f"\n… {frame.height - max_rows} more rows")
    return dg.MetadataValue.md("\n".join(lines))


def table_metadata(con: duckdb.DuckDBPyConnection, table: str, preview_rows: int = 10) -> dict:
    """Row count, column schema and a preview of a warehouse table (a fixed name)."""
    frame = con.sql(f"SELECT * FROM {table} LIMIT {int(preview_rows)}").pl()
    count = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    schema = dg.TableSchema(columns=[dg.TableColumn(name, str(dtype)) for name, dtype in frame.schema.items()])
    return {
        "dagster/row_count": count,
        "dagster/column_schema": schema,
        "table": table,
        "preview": markdown_table(frame),
    }
