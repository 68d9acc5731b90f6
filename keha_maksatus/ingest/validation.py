"""Turning one file's text rows into typed valid rows and quarantined rejections.

Parse first (a cell that cannot be read is a rejection with its raw text), then let the
pandera model check the typed rows. Every row read ends up valid or rejected.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Collection

import pandera.polars as pa
import polars as pl

from keha_maksatus.ingest import parsing
from keha_maksatus.ingest.privacy import mask_free_text, mask_string
from keha_maksatus.ingest.readers import EXTRA_FIELDS, LINE, ReadResult, UnreadableFile
from keha_maksatus.ingest.schemas import DATAFRAME_CHECK_COLUMNS, PERSONAL_DATA_RULE, RULE_NAMES, ExportKind

RAGGED_COLUMN = "(extra fields)"
_TYPED = "__typed_"  # prefix of the parsed twin of each text column
REJECTION_SCHEMA = {LINE: pl.Int64, "column": pl.String, "rule": pl.String, "raw_value": pl.String}


@dataclass
class ValidationResult:
    valid: pl.DataFrame  # typed rows that passed every rule, with `line`
    rejections: pl.DataFrame  # one row per failed cell: line, column, rule, raw_value
    rows_read: int
    extra_columns: list[str]

    @property
    def rows_rejected(self) -> int:
        return self.rejections[LINE].n_unique()

    @property
    def rows_valid(self) -> int:
        return self.valid.height


def validate_read(read: ReadResult, kind: ExportKind, extract_date: dt.date) -> ValidationResult:
    """Validate what readers.read_export read, as its format asks."""
    return validate_export(
        read.frame, kind, extract_date, spreadsheet=read.file_format == "xlsx", timestamp_columns=read.timestamp_columns
    )


def validate_export(
    frame: pl.DataFrame, kind: ExportKind, extract_date: dt.date, spreadsheet: bool = False,
    timestamp_columns: Collection[str] = (),
) -> ValidationResult:
    """Validate an all-text frame (as from readers.read_export) of the given kind.

    `spreadsheet`: the rows come from an .xlsx, whose date cells may hold serial numbers.
    `timestamp_columns`: columns that came typed as timestamps (Parquet, Excel date cells); in a date
    column such a timestamp is its date, whatever its time of day."""
    missing = [c for c in kind.required_columns if c not in frame.columns]
    if missing:
        raise UnreadableFile(f"missing required columns: {', '.join(missing)} (found: {_found_columns(frame)})")
    extra = [c for c in frame.columns if c not in kind.column_names and c not in (LINE, EXTRA_FIELDS)]
    ragged = _ragged_rows(frame)
    frame = frame.with_columns(
        pl.lit(None, dtype=pl.String).alias(c) for c in kind.column_names if c not in frame.columns
    ).select(LINE, *kind.column_names)
    if spreadsheet:
        frame = frame.with_columns(parsing.excel_serial_as_iso(c) for c in kind.date_columns)
    typed_dates = [c.name for c in kind.columns if c.parse is parsing.parse_date and c.name in timestamp_columns]
    frame = frame.with_columns(pl.col(c).str.slice(0, 10) for c in typed_dates)

    # Parse every column once; a cell with content that parses to null is a rejection.
    parsed = _parse(frame, kind)
    parse_failures = _parse_failures(parsed, kind)
    typed = parsed.select(
        LINE,
        *[
            (pl.col(f"{_TYPED}{spec.name}").fill_null(spec.default) if spec.default is not None else pl.col(f"{_TYPED}{spec.name}")).alias(spec.name)
            for spec in kind.columns
        ],
    )
    del parsed
    typed = typed.with_columns(pl.lit(extract_date, dtype=pl.Date).alias("extract_date"))

    schema_failures = _schema_failures(typed, kind)
    # A cell that could not be parsed is null in the typed frame: report it once, and not
    # again through the cross-column rules that read it.
    schema_failures = schema_failures.join(parse_failures.select(LINE, "column"), on=[LINE, "column"], how="anti")
    schema_failures = schema_failures.filter(
        ~pl.col("rule").is_in(list(DATAFRAME_CHECK_COLUMNS)) | ~pl.col(LINE).is_in(parse_failures[LINE].implode())
    )
    # A code or id holding personal data is rejected for that alone, not its other rules too.
    personal = schema_failures.filter(pl.col("rule") == PERSONAL_DATA_RULE)
    schema_failures = pl.concat([personal, schema_failures.join(personal.select(LINE, "column"), on=[LINE, "column"], how="anti")])
    failures = pl.concat([parse_failures, schema_failures])
    rejections = pl.concat([_attach_raw_values(failures, frame), ragged]).sort(LINE, "column")

    valid = typed.drop("extract_date", strict=False)
    if not rejections.is_empty():
        valid = valid.join(rejections.select(LINE).unique(), on=LINE, how="anti")
    return ValidationResult(valid=valid, rejections=rejections, rows_read=frame.height, extra_columns=extra)


def _found_columns(frame: pl.DataFrame, shown: int = 20, width: int = 40) -> str:
    """The file's column names for a message: masked, each cut to `width` characters, at
    most `shown` of them (a header line may be any text, personal data included)."""
    names = [c for c in frame.columns if c not in (LINE, EXTRA_FIELDS)]
    cut = [name if len(name) <= width else name[: width - 1] + "…" for name in (mask_string(n) for n in names[:shown])]
    return ", ".join(cut) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def _parse(frame: pl.DataFrame, kind: ExportKind) -> pl.DataFrame:
    """The frame with the typed twin of each column. Where a column has a fast parser,
    the full parser reads only the cells the fast one left null."""
    parsed = frame.with_columns(
        (spec.fast_parse or spec.parse)(spec.name).alias(f"{_TYPED}{spec.name}") for spec in kind.columns
    )
    fast = [spec for spec in kind.columns if spec.fast_parse]
    if not fast:
        return parsed
    left = parsed.with_row_index("__position").filter(
        pl.any_horizontal(pl.col(s.name).is_not_null() & pl.col(f"{_TYPED}{s.name}").is_null() for s in fast)
    )
    if left.is_empty():
        return parsed
    reparsed = left.select("__position", *[spec.parse(spec.name).alias(f"{_TYPED}{spec.name}") for spec in fast])
    positions = reparsed["__position"]
    return parsed.with_columns(
        parsed[f"{_TYPED}{spec.name}"].scatter(positions, reparsed[f"{_TYPED}{spec.name}"]) for spec in fast
    )


def _ragged_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows with more fields than the header: rejected, their surplus kept as raw value."""
    if EXTRA_FIELDS not in frame.columns:
        return pl.DataFrame(schema=REJECTION_SCHEMA)
    return frame.filter(pl.col(EXTRA_FIELDS).is_not_null()).select(
        LINE,
        pl.lit(RAGGED_COLUMN).alias("column"),
        pl.lit("too_many_fields").alias("rule"),
        mask_free_text(pl.col(EXTRA_FIELDS)).alias("raw_value"),
    )


def _parse_failures(parsed: pl.DataFrame, kind: ExportKind) -> pl.DataFrame:
    """(line, column, rule) of every cell with content that its parser could not read."""
    parts = []
    for spec in kind.columns:
        if not spec.parse_rule:
            continue
        # cheap test first: only a non-empty cell without a value can be a failure
        suspects = parsed.filter(pl.col(spec.name).is_not_null() & pl.col(f"{_TYPED}{spec.name}").is_null())
        parts.append(
            suspects.filter(spec.meaningful_text(spec.name).is_not_null()).select(
                LINE, pl.lit(spec.name).alias("column"), pl.lit(spec.parse_rule).alias("rule")
            )
        )
    return pl.concat(parts) if parts else _empty_failures()


def _empty_failures() -> pl.DataFrame:
    return pl.DataFrame(schema={LINE: pl.Int64, "column": pl.String, "rule": pl.String})


def _schema_failures(typed: pl.DataFrame, kind: ExportKind) -> pl.DataFrame:
    try:
        kind.model.validate(typed, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
    else:
        return _empty_failures()
    schema_level = cases.filter(pl.col("index").is_null())
    if schema_level.height:
        # Types are set by our own parsers, so this is a bug, not bad input.
        raise RuntimeError(f"schema-level validation failure on parsed {kind.name}: {schema_level.select('column', 'check').to_dicts()}")
    lines = typed[LINE]
    return cases.select(
        pl.col("index").map_batches(lambda idx: lines.gather(idx.cast(pl.UInt32)), return_dtype=pl.Int64).alias(LINE),
        pl.when(pl.col("schema_context") == "DataFrameSchema")
        .then(pl.col("check").replace_strict({**DATAFRAME_CHECK_COLUMNS, "duplicate_id_in_file": kind.id_column}, default=pl.col("column")))
        .otherwise(pl.col("column"))
        .alias("column"),
        pl.when(pl.col("check").str.starts_with("isin("))
        .then(pl.lit("allowed_values"))
        .otherwise(pl.col("check").replace(RULE_NAMES))
        .alias("rule"),
    ).unique(maintain_order=True)


def _attach_raw_values(failures: pl.DataFrame, frame: pl.DataFrame) -> pl.DataFrame:
    parts = []
    for column in failures["column"].unique().to_list():
        raw = frame.select(LINE, pl.col(column).alias("raw_value"))
        if column == "asiakastunnus":
            raw = raw.with_columns(
                pl.when(pl.col("raw_value").is_not_null())
                .then(pl.format("[masked, {} characters]", pl.col("raw_value").str.len_chars()))
                .alias("raw_value")
            )
        else:  # personal data typed into the wrong column is masked too
            raw = raw.with_columns(mask_free_text(pl.col("raw_value")))
        parts.append(failures.filter(pl.col("column") == column).join(raw, on=LINE, how="left"))
    if not parts:
        return pl.DataFrame(schema=REJECTION_SCHEMA)
    return pl.concat(parts).select(list(REJECTION_SCHEMA))
