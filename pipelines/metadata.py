"""Helpers that turn query results into Dagster metadata."""

from __future__ import annotations

import dagster as dg
import duckdb
import polars as pl

from keha_maksatus.outputs.publish import column_comments
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


def column_schema(con: duckdb.DuckDBPyConnection, table: str) -> dg.TableSchema:
    """The table's columns with their DuckDB types and the descriptions the published
    file carries (COMMENT ON, set when publishing: the same texts)."""
    schema_name, table_name = table.split(".")
    columns = con.execute(
        "SELECT column_name, data_type, comment FROM duckdb_columns() "
        "WHERE database_name = current_database() AND schema_name = ? AND table_name = ? ORDER BY column_index",
        [schema_name, table_name],
    ).fetchall()
    described = column_comments().get(table, {})
    return dg.TableSchema(columns=[
        dg.TableColumn(name, dtype, description=comment or described.get(name)) for name, dtype, comment in columns
    ])


def table_metadata(con: duckdb.DuckDBPyConnection, table: str, preview_rows: int = 10) -> dict:
    """Row count, column schema (with the column descriptions) and a preview of a
    warehouse table (a fixed name)."""
    frame = con.sql(f"SELECT * FROM {table} LIMIT {int(preview_rows)}").pl()
    count = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    return {
        "dagster/row_count": count,
        "dagster/column_schema": column_schema(con, table),
        "table": table,
        "preview": markdown_table(frame),
    }
