"""Finnish personal identity codes (henkilötunnus) and business IDs (Y-tunnus).

Scalar functions for tests and single values; `is_valid_customer_id` is the vectorised
form used on whole columns.
"""

from __future__ import annotations

import polars as pl

HETU_CHECK_CHARS = "0123456789ABCDEFHJKLMNPRSTUVWXY"
HETU_PATTERN = r"^(\d{6})[-+A-FU-Y](\d{3})([0-9A-Y])$"
YTUNNUS_PATTERN = r"^(\d{7})-(\d)$"
YTUNNUS_WEIGHTS = (7, 9, 10, 5, 8, 4, 2)


def hetu_check_char(birth_date: str, individual: str) -> str:
    return HETU_CHECK_CHARS[int(birth_date + individual) % 31]


def is_valid_hetu(code: str) -> bool:
    """Format, century sign and check character of a personal identity code."""
    import re

    match = re.match(HETU_PATTERN, code.strip().upper())
    return bool(match) and hetu_check_char(match.group(1), match.group(2)) == match.group(3)


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


def _hetu_valid_expr(code: pl.Expr) -> pl.Expr:
    number = (code.str.slice(0, 6) + code.str.slice(7, 3)).cast(pl.Int64, strict=False)
    expected = pl.lit(HETU_CHECK_CHARS).str.slice((number % 31).cast(pl.Int64), 1)
    return code.str.contains(HETU_PATTERN) & (code.str.slice(10, 1) == expected)


def _ytunnus_valid_expr(code: pl.Expr) -> pl.Expr:
    weighted = pl.sum_horizontal(
        [code.str.slice(i, 1).cast(pl.Int64, strict=False) * w for i, w in enumerate(YTUNNUS_WEIGHTS)]
    )
    rest = weighted % 11
    expected = pl.when(rest == 0).then(0).when(rest == 1).then(None).otherwise(11 - rest)
    given = code.str.slice(8, 1).cast(pl.Int64, strict=False)
    return code.str.contains(YTUNNUS_PATTERN) & (given == expected).fill_null(False)


def is_valid_customer_id(code: pl.Expr) -> pl.Expr:
    """True where the (trimmed, upper-cased) text is a checksum-valid hetu or Y-tunnus."""
    normalised = code.str.strip_chars().str.to_uppercase()
    return (_hetu_valid_expr(normalised) | _ytunnus_valid_expr(normalised)).fill_null(False)
