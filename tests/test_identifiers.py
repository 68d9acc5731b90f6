"""Personal identity code and Y-tunnus checksums, scalar and vectorised."""

import datetime as dt

import polars as pl
from hypothesis import given, strategies as st

from keha_maksatus.ingest.identifiers import (
    HETU_CHECK_CHARS,
    hetu_birth_date,
    hetu_birth_date_validity,
    is_valid_customer_id,
    is_valid_hetu,
    is_valid_ytunnus,
    ytunnus_check_digit,
)

VALID = ["131052-308T", "010101A123N", "0737546-2", "1572860-0"]
INVALID = ["131052-308A", "131052*308T", "0737546-3", "737546-2", "abc", "", "1310523-08T"]


def vectorised(values):
    return pl.DataFrame({"c": values}, schema={"c": pl.String}).select(is_valid_customer_id(pl.col("c"))).to_series().to_list()


def test_known_valid_and_invalid():
    assert all(is_valid_hetu(c) or is_valid_ytunnus(c) for c in VALID)
    assert not any(is_valid_hetu(c) or is_valid_ytunnus(c) for c in INVALID)
    assert vectorised(VALID + INVALID) == [True] * len(VALID) + [False] * len(INVALID)


def test_ytunnus_rest_one_has_no_valid_digit():
    # 1000001: 7*1 + 2*1 = 9 -> 11 - 9 = 2; find a body with rest 1 and check no digit passes.
    body = next(f"{n:07d}" for n in range(1000000, 1001000) if ytunnus_check_digit(f"{n:07d}") is None)
    assert not any(is_valid_ytunnus(f"{body}-{d}") for d in range(10))
    assert vectorised([f"{body}-{d}" for d in range(10)]) == [False] * 10


@given(st.integers(0, 9_999_999))
def test_ytunnus_vectorised_agrees_with_scalar(n):
    body = f"{n:07d}"
    codes = [f"{body}-{d}" for d in range(10)]
    assert vectorised(codes) == [is_valid_ytunnus(c) for c in codes]
    assert sum(vectorised(codes)) == (0 if ytunnus_check_digit(body) is None else 1)


@given(st.integers(1, 28), st.integers(1, 12), st.integers(0, 99), st.sampled_from("-+AUVWXYBCDEF"), st.integers(2, 899), st.sampled_from(HETU_CHECK_CHARS))
def test_hetu_vectorised_agrees_with_scalar(day, month, year, sign, individual, check):
    code = f"{day:02d}{month:02d}{year:02d}{sign}{individual:03d}{check}"
    assert vectorised([code]) == [is_valid_hetu(code)]
    expected = HETU_CHECK_CHARS[int(f"{day:02d}{month:02d}{year:02d}{individual:03d}") % 31]
    assert is_valid_hetu(code) == (check == expected)


def birth_date_validity(values):
    frame = pl.DataFrame({"c": values}, schema={"c": pl.String}).lazy()
    return hetu_birth_date_validity(frame, "c").collect().to_series().to_list()


@given(st.integers(0, 39), st.integers(0, 14), st.integers(0, 99), st.sampled_from("-+AUVWXYBCDEF"), st.integers(2, 899))
def test_hetu_birth_date_vectorised_agrees_with_the_calendar(day, month, year, sign, individual):
    body = f"{day:02d}{month:02d}{year:02d}"
    code = f"{body}{sign}{individual:03d}{HETU_CHECK_CHARS[int(body + f'{individual:03d}') % 31]}"
    century = 1800 if sign == "+" else 2000 if sign in "ABCDEF" else 1900
    try:
        real = dt.date(century + year, month, day)
    except ValueError:
        real = None
    assert hetu_birth_date(code) == real
    assert birth_date_validity([code, code.lower(), f" {code} "]) == [real is not None] * 3
    assert is_valid_hetu(code) == (real is not None)


def test_birth_date_rule_leaves_other_ids_alone():
    # Business IDs, malformed codes and empty cells are judged by the other rules.
    assert birth_date_validity(["0737546-2", "abc", "", None, "310422-123V", "290200A654D"]) == [True, True, True, True, False, True]
