"""The README's example queries run against a warehouse built from the bundled sample."""

from pathlib import Path

import duckdb
import pytest


QUERIES = Path(__file__).resolve().parents[1] / "docs" / "example_queries.sql"


def example_queries() -> list[tuple[str, str]]:
    """(question, sql) for every query in the file: the comment line above names it."""
    found = []
    for block in QUERIES.read_text(encoding="utf-8").split(";"):
        lines = [line for line in block.strip().splitlines() if line.strip()]
        sql = "\n".join(line for line in lines if not line.startswith("--"))
        if sql:
            question = [line for line in lines if line.startswith("--")][-1].lstrip("- ")
            found.append((question, sql))
    return found


@pytest.mark.parametrize("question, sql", example_queries(), ids=[q for q, _ in example_queries()])
def test_example_query_answers(sample_warehouse, question, sql):
    con = duckdb.connect(str(sample_warehouse), read_only=True)
    try:
        rows = con.execute(sql).fetchall()
    finally:
        con.close()
    assert rows, f"no answer to: {question}"
