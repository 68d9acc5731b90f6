"""Finnish personal identity codes (henkilötunnus) and business IDs (Y-tunnus).

Scalar functions for tests and single values; `customer_id_validity` is the vectorised
form used on whole columns (by the pandera model), `is_valid_customer_id` the same as an
expression for small frames.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

HETU_CHECK_CHARS = "0123456789ABCDEFHJKLMNPRSTUVWXY"
HETU_PATTERN = r"^(\d{6})[-+A-FU-Y](\d{3})([0-9A-Y])$"
YTUNNUS_PATTERN = r"^(\d{7})-(\d)$"
YTUNNUS_WEIGHTS = (7, 9, 10, 5, 8, 4, 2)
_HETU_CHECK_VALUES = {char: value for value, char in enumerate(HETU_CHECK_CHARS)}


# The century of the birth date by the sign between date and individual number.
HETU_CENTURIES = {"+": 1800, **dict.fromkeys("-YXWVU", 1900), **dict.fromkeys("ABCDEF", 2000)}


def hetu_birth_date(code: str) -> dt.date | None:
    """The birth date in a personal identity code, None when it is no real date."""
    code = code.strip().upper()
    try:
        year = HETU_CENTURIES[code[6]] + int(code[4:6])
        return dt.date(year, int(code[2:4]), int(code[0:2]))
    except (IndexError, KeyError, ValueError):
        return None


def hetu_check_char(birth_date: str, individual: str) -> str:
    return HETU_CHECK_CHARS[int(birth_date + individual) % 31]


def is_valid_hetu(code: str) -> bool:
    """Format, century sign and check character of a personal identity code."""
    import re

    match = re.match(HETU_PATTERN, code.strip().upper())
    return bool(match) and hetu_check_char(match.group(1), match.group(2)) == match.group(3) and hetu_birth_date(code) is not None


def ytunnus_check_digit(body: str) -> int | None:
    """The check digit for the 7-digit body, or None when no digit is possible (rest 1)."""
    rest = sum(int(d) * w for d, w in zip(body, YTUNNUS_WEIGHTS)) % 11
    if rest == 1:
        return None
    return 0 if rest == 0 else 11 - rest


def is_valid_ytunnus(code: str) -> bool:
    """Format and check digit of a business ID `1234567-8`."""
    import re

    match = re.match(YTUNNUS_PATTERN, code.strip())
    return bool(match) and ytunnus_check_digit(match.group(1)) == int(match.group(2))


def customer_id_validity(frame: pl.LazyFrame, column: str) -> pl.LazyFrame:
    """One boolean column, `column`: is the (trimmed, upper-cased) text a checksum-valid
    hetu or Y-tunnus? Computed in stages, as polars would recompute a shared
    sub-expression at each use."""
    code = pl.col("code")
    return (
        frame.select(pl.col(column).str.strip_chars().str.to_uppercase().alias("code"))
        .with_columns(
            hetu_form=code.str.contains(HETU_PATTERN),
            # the nine digits and the check character as numbers: no string concatenation
            hetu_number=code.str.slice(0, 6).cast(pl.Int32, strict=False) * 1000 + code.str.slice(7, 3).cast(pl.Int32, strict=False),
            given_check=code.str.slice(10, 1).replace_strict(_HETU_CHECK_VALUES, default=None, return_dtype=pl.Int32),
            ytunnus_form=code.str.contains(YTUNNUS_PATTERN),
            body=code.str.slice(0, 7).cast(pl.Int32, strict=False),
            given_digit=code.str.slice(8, 1).cast(pl.Int32, strict=False),
        )
        .with_columns(
            # digit i of the 7-digit body by arithmetic, not seven string slices
            rest=pl.sum_horizontal([(pl.col("body") // 10 ** (6 - i)) % 10 * w for i, w in enumerate(YTUNNUS_WEIGHTS)]) % 11,
        )
        .select(
            (
                (pl.col("hetu_form") & (pl.col("hetu_number") % 31 == pl.col("given_check")))
                | (pl.col("ytunnus_form") & (pl.col("rest") != 1) & (pl.col("given_digit") == (11 - pl.col("rest")) % 11))
            ).fill_null(False).alias(column)
        )
    )


def hetu_birth_date_validity(frame: pl.LazyFrame, column: str) -> pl.LazyFrame:
    """One boolean column, `column`: false only for a text of the identity code's form
    whose date part (day, month, two-digit year and century sign) is no real date."""
    code = pl.col(column).str.strip_chars().str.to_uppercase()
    day, month = code.str.slice(0, 2).cast(pl.Int32, strict=False), code.str.slice(2, 2).cast(pl.Int32, strict=False)
    century = code.str.slice(6, 1).replace_strict(HETU_CENTURIES, default=None, return_dtype=pl.Int32)
    year = century + code.str.slice(4, 2).cast(pl.Int32, strict=False)
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_days = (
        pl.when(month == 2).then(pl.when(leap).then(29).otherwise(28))
        .when(month.is_in([4, 6, 9, 11])).then(30)
        .otherwise(31)
    )
    real = (month >= 1) & (month <= 12) & (day >= 1) & (day <= month_days)
    return frame.select((~code.str.contains(HETU_PATTERN) | real).fill_null(True).alias(column))


def is_valid_customer_id(code: pl.Expr) -> pl.Expr:
    """The same test as an expression, for small frames and tests."""
    return code.map_batches(
        lambda s: customer_id_validity(s.to_frame("c").lazy(), "c").collect()["c"], return_dtype=pl.Boolean
    )
