"""`keha-maksatus sql`: a small SQL shell on the published warehouse, opened read-only.

The file is written by DuckDB 2, which DuckDB 1.x clients cannot read; this shell runs on the
project's own DuckDB, so it always can. Statements end with `;` (they may span lines); dot
commands: .tables, .describe TABLE, .help, .quit. Results print as DuckDB's boxed tables.
"""

from __future__ import annotations

import cmd
import sys
from pathlib import Path

import duckdb

from keha_maksatus.errors import ConfigurationError, one_line
from keha_maksatus.outputs.publish import open_published

MAX_ROWS = 40
INTRO = (
    "Read-only SQL on {path} (DuckDB {version}). End a statement with ';'.\n"
    "  .tables            the tables and their descriptions\n"
    "  .describe TABLE    a table's columns, types and descriptions\n"
    "  .quit              leave (also Ctrl-D)\n"
    "For example: SELECT * FROM kpi.quality_section;"
)


def open_warehouse(path: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the published file, or a ConfigurationError saying what to do."""
    if not path.is_file():
        raise ConfigurationError(f"no published warehouse at {path}; run `make run` (or keha-maksatus run --warehouse {path}) first")
    return open_published(path)


def run_statements(con: duckdb.DuckDBPyConnection, text: str, out=None) -> None:
    """Run every statement of `text`, printing each result table."""
    out = out or sys.stdout
    for statement in con.extract_statements(text):
        result = con.sql(statement.query)
        if result is not None:
            print(result.__str__() if len(result) <= MAX_ROWS else _limited(result), file=out)


def _limited(result: duckdb.DuckDBPyRelation) -> str:
    return f"{result.limit(MAX_ROWS)}({len(result)} rows, the first {MAX_ROWS} shown; add LIMIT/OFFSET or export with COPY ... TO)\n"


TABLES_QUERY = """
SELECT schema_name || '.' || table_name AS "table", estimated_size AS rows, comment AS description
FROM duckdb_tables() WHERE database_name = current_database() ORDER BY 1
"""
DESCRIBE_QUERY = """
SELECT column_name AS "column", data_type AS type, comment AS description FROM duckdb_columns()
WHERE database_name = current_database() AND schema_name || '.' || table_name = ? ORDER BY column_index
"""


class SqlShell(cmd.Cmd):
    prompt = "maksatus> "
    continuation = "     ...> "

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path):
        super().__init__()
        self.con = con
        self.intro = INTRO.format(path=path, version=duckdb.__version__)
        self.buffer: list[str] = []

    def default(self, line: str) -> bool:
        self.buffer.append(line)
        text = "\n".join(self.buffer).strip()
        if not text.endswith(";"):
            self.prompt = self.continuation
            return False
        self.buffer, self.prompt = [], SqlShell.prompt
        self._run(lambda: run_statements(self.con, text, self.stdout))
        return False

    def onecmd(self, line: str) -> bool:
        stripped = line.strip()
        if not self.buffer and stripped.startswith("."):
            command, _, argument = stripped[1:].partition(" ")
            return self._dot(command, argument.strip().rstrip(";"))
        if stripped == "EOF":
            self.stdout.write("\n")
            return True
        if not stripped and not self.buffer:
            return False
        return self.default(line)

    def _dot(self, command: str, argument: str) -> bool:
        if command in ("quit", "exit", "q"):
            return True
        if command == "tables":
            self._run(lambda: print(self.con.sql(TABLES_QUERY), file=self.stdout))
        elif command in ("describe", "schema") and argument:
            self._run(lambda: print(self.con.sql(DESCRIBE_QUERY, params=[argument]), file=self.stdout))
        else:
            print(INTRO.format(path="the published warehouse", version=duckdb.__version__), file=self.stdout)
        return False

    def _run(self, action) -> None:
        try:
            action()
        except duckdb.Error as error:
            print(f"error: {one_line(error)}", file=self.stdout)


def sql_command(path: Path, query: str | None) -> int:
    """Run `query` and leave (exit code 1 on an SQL error), or start the interactive shell."""
    con = open_warehouse(path)
    try:
        if query is not None:
            try:
                run_statements(con, query)
            except duckdb.Error as error:
                print(f"error: {one_line(error)}", file=sys.stderr)
                return 1
            return 0
        try:
            import readline  # noqa: F401 - line editing and history for input()
        except ImportError:
            pass
        SqlShell(con, path).cmdloop()
        return 0
    finally:
        con.close()
