"""Text-to-type parsing of Finnish export values, as polars expressions.

Every parser returns null for text it cannot read; the caller compares with the raw
text to tell "empty" from "unparseable" and reports the latter as a rejection.
"""

from __future__ import annotations

import polars as pl

NO_SCORE_TOKEN = "EOS"


def clean_text(column: str) -> pl.Expr:
    """Trimmed text, with empty strings as null."""
    text = pl.col(column).str.strip_chars()
    return pl.when(text == "").then(None).otherwise(text)


def lower_text(column: str) -> pl.Expr:
    return clean_text(column).str.to_lowercase()


def upper_text(column: str) -> pl.Expr:
    return clean_text(column).str.to_uppercase()


def _unchanged_if(column: str, pattern: str) -> pl.Expr:
    raw = pl.col(column)
    return pl.when(raw.str.contains(pattern)).then(raw)


# Fast forms of the three: the text as it is where cleaning cannot change it, null
# elsewhere. Case is judged by a short list of letters, not by Unicode classes: the
# regex engine's tables and the case mapping's differ in Unicode version.
_ASCII_MARKS = r"!-/:-@\[-`{-~"
_LOWER = f"a-z0-9åäöüéšžõ{_ASCII_MARKS}"
_UPPER = f"A-Z0-9ÅÄÖÜÉŠŽÕ{_ASCII_MARKS}"


def fast_clean_text(column: str) -> pl.Expr:
    return _unchanged_if(column, r"^\S(.*\S)?$")


def fast_lower_text(column: str) -> pl.Expr:
    return _unchanged_if(column, f"^[{_LOWER}]([{_LOWER} ]*[{_LOWER}])?$")


def fast_upper_text(column: str) -> pl.Expr:
    return _unchanged_if(column, f"^[{_UPPER}]([{_UPPER} ]*[{_UPPER}])?$")


def parse_decimal(column: str) -> pl.Expr:
    """`1 234,50`, `1234,5` and `1234.50` as Float64; anything else null."""
    text = pl.col(column).str.replace_all(r"[\s\u00a0\u202f]", "")
    return (
        pl.when(text.str.contains(r"^-?\d+([.,]\d+)?$"))
        .then(text.str.replace(",", ".", literal=True))
        .cast(pl.Float64, strict=False)
    )


def fast_decimal(column: str) -> pl.Expr:
    """The export's usual form, `1234,5`, only; null for anything else (see parse_decimal)."""
    raw = pl.col(column)
    return pl.when(raw.str.contains(r"^-?\d+(,\d+)?$")).then(raw.str.replace(",", ".", literal=True)).cast(pl.Float64, strict=False)


def parse_integer(column: str) -> pl.Expr:
    """Plain whole numbers (an optional `.0` from spreadsheets allowed); else null."""
    text = clean_text(column).str.replace(r"\.0+$", "")
    return pl.when(text.str.contains(r"^-?\d+$")).then(text).otherwise(None).cast(pl.Int64, strict=False)


def fast_integer(column: str) -> pl.Expr:
    """Plain digits only; null for anything else (see parse_integer)."""
    raw = pl.col(column)
    return pl.when(raw.str.contains(r"^\d+$")).then(raw).cast(pl.Int64, strict=False)


# A date-time at midnight (as spreadsheets and databases write dates) counts as the date;
# the hour as one digit or two, as parse_datetime reads it.
_MIDNIGHT = r"([ T]0?0:00(:00(\.0+)?)?)?"


def parse_date(column: str) -> pl.Expr:
    """`d.m.yyyy` (leading zeros optional) or ISO `yyyy-mm-dd` as Date; a time part of
    midnight (as spreadsheets write dates) is allowed. Impossible dates are null.
    (Written for speed: a cheap pattern test picks the one format to try.)"""
    raw = pl.col(column)
    finnish = raw.str.contains(r"^\s*\d{1,2}\.\d{1,2}\.\d{4}" + _MIDNIGHT + r"\s*$")
    iso = raw.str.contains(r"^\s*\d{4}-\d{1,2}-\d{1,2}" + _MIDNIGHT + r"\s*$")
    day = raw.str.strip_chars().str.replace(r"[ T].*$", "")
    return (
        pl.when(finnish).then(day.str.to_date("%d.%m.%Y", strict=False))
        .when(iso).then(day.str.to_date("%Y-%m-%d", strict=False))
    )


def fast_date(column: str) -> pl.Expr:
    """The export's usual form, `d.m.yyyy`, only; null for anything else (see parse_date)."""
    raw = pl.col(column)
    return pl.when(raw.str.contains(r"^\d{1,2}\.\d{1,2}\.\d{4}$")).then(raw.str.to_date("%d.%m.%Y", strict=False))


def excel_serial_as_iso(column: str) -> pl.Expr:
    """A spreadsheet cell holding a date as its serial number (days since 30.12.1899, the
    fraction being the time of day) as ISO text; other text unchanged. Only serials of
    the years 1950-2099 are taken as dates."""
    text = pl.col(column).str.strip_chars()
    serial = pl.when(text.str.contains(r"^\d{5}(\.\d+)?$")).then(text.cast(pl.Float64, strict=False))
    in_range = (serial >= 18264) & (serial < 73051)
    moment = pl.datetime(1899, 12, 30) + pl.duration(milliseconds=(serial * 86_400_000).round(0).cast(pl.Int64))
    iso = pl.when(serial.mod(1) == 0).then(moment.dt.strftime("%Y-%m-%d")).otherwise(moment.dt.strftime("%Y-%m-%d %H:%M:%S"))
    return pl.when(in_range).then(iso).otherwise(pl.col(column)).alias(column)


def parse_datetime(column: str) -> pl.Expr:
    """A date, or a date-time `d.m.yyyy hh:mm[:ss]` / ISO (`T` or space, fractions of a
    second dropped), as Datetime."""
    raw = pl.col(column)
    text = raw.str.strip_chars().str.replace("T", " ", literal=True).str.replace(r"(:\d{2})\.\d+$", "$1")
    # every form completed to `date hh:mm:ss`, so that one format per date order serves
    full = (
        text.str.replace(r"^(\S+)$", "$1 00:00:00").str.replace(r"^(\S+ \d{1,2}:\d{2})$", "$1:00")
    )
    finnish = text.str.contains(r"^\d{1,2}\.\d{1,2}\.\d{4}( \d{1,2}:\d{2}(:\d{2})?)?$")
    iso = text.str.contains(r"^\d{4}-\d{1,2}-\d{1,2}( \d{1,2}:\d{2}(:\d{2})?)?$")
    return (
        pl.when(finnish).then(full.str.to_datetime("%d.%m.%Y %H:%M:%S", strict=False, time_unit="us"))
        .when(iso).then(full.str.to_datetime("%Y-%m-%d %H:%M:%S", strict=False, time_unit="us"))
    )


def fast_datetime(column: str) -> pl.Expr:
    """The export's usual form, `d.m.yyyy hh:mm`, only; null for anything else (see parse_datetime)."""
    raw = pl.col(column)
    # date and time parsed apart: twice as fast as one to_datetime
    parts = raw.str.split_exact(" ", 1)
    day = parts.struct.field("field_0").str.to_date("%d.%m.%Y", strict=False)
    moment = day.dt.combine(parts.struct.field("field_1").str.to_time("%H:%M", strict=False), time_unit="us")
    return pl.when(raw.str.contains(r"^\d{1,2}\.\d{1,2}\.\d{4} \d{1,2}:\d{2}$")).then(moment)


def score_text(column: str) -> pl.Expr:
    """The score's text with the no-score token (`EOS`) as null."""
    text = clean_text(column)
    return pl.when(text.str.to_uppercase() == NO_SCORE_TOKEN).then(None).otherwise(text)


def parse_score(column: str) -> pl.Expr:
    """A survey score as a whole number; null for `EOS` or empty (no score)."""
    text = score_text(column)
    return pl.when(text.str.contains(r"^-?\d+$")).then(text).otherwise(None).cast(pl.Int64, strict=False)


def fast_score(column: str) -> pl.Expr:
    """A single digit only; null for anything else (see parse_score)."""
    raw = pl.col(column)
    return pl.when(raw.str.contains(r"^\d$")).then(raw).cast(pl.Int64, strict=False)

