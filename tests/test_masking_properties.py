"""Masking over generated personal data in random text: every form of identity code,
business ID, phone number, IBAN and e-mail address the contract names, glued to or
embedded in random text, loses its digits; amounts, dates, times and real ids are left
alone; the column masking equals the masking of each cell."""

import datetime as dt
import re

import polars as pl
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from keha_maksatus.ingest.identifiers import HETU_CHECK_CHARS, ytunnus_check_digit
from keha_maksatus.ingest.privacy import holds_personal_data, mask_column, mask_free_text, mask_string

DIGITS = "0123456789"
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---- personal data in every form --------------------------------------------------------

CENTURY_SIGNS = {1800: "+", 1900: "-YXWVU", 2000: "ABCDEF"}


@st.composite
def identity_codes(draw) -> str:
    """A valid personal identity code: random birth date, any century sign of its
    century (the 2023 reform's too), random individual number, its check character."""
    born = draw(st.dates(dt.date(1800, 1, 1), dt.date(2099, 12, 31)))
    sign = draw(st.sampled_from(CENTURY_SIGNS[born.year // 100 * 100]))
    birth = born.strftime("%d%m") + f"{born.year % 100:02d}"
    individual = f"{draw(st.integers(2, 899)):03d}"
    code = f"{birth}{sign}{individual}{HETU_CHECK_CHARS[int(birth + individual) % 31]}"
    return code.lower() if draw(st.integers(0, 9)) == 0 else code


@st.composite
def business_ids(draw) -> str:
    body = f"{draw(st.integers(0, 9_999_999)):07d}"
    check = ytunnus_check_digit(body)
    assume(check is not None)
    return f"{body}-{check}"


@st.composite
def e_mails(draw) -> str:
    word = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
    local = draw(st.lists(word, min_size=1, max_size=3).map(lambda parts: ".".join(parts)))
    local += draw(st.sampled_from(["", "+tag", "_x", "-2"]))
    domain = ".".join(draw(st.lists(word, min_size=1, max_size=3)))
    return f"{local}@{domain}.{draw(st.sampled_from(['fi', 'com', 'se', 'org']))}"


DOMESTIC_AREAS = ["040", "041", "044", "045", "046", "050", "0400", "0440", "0500", "09", "02", "03", "013", "017", "019", "0800"]


def _groups(draw, digits: str, first_at_least: int) -> list[str]:
    """The digits cut into groups of 2 to 4 (the first at least `first_at_least`)."""
    groups, rest = [], digits
    while rest:
        low = first_at_least if not groups else 2
        size = len(rest) if len(rest) <= max(low, 4) else draw(st.integers(low, min(4, len(rest) - 2)))
        groups.append(rest[:size])
        rest = rest[size:]
    return groups


def _groups_of_3_or_more(draw, digits: str) -> list[str]:
    cuts = draw(st.sets(st.integers(3, len(digits) - 3))) if len(digits) >= 6 else set()
    cuts = sorted(c for c in cuts if all(abs(c - other) >= 3 for other in cuts if other != c))
    return [digits[a:b] for a, b in zip([0, *cuts], [*cuts, len(digits)])]


def _subscriber(draw, low: int = 5, high: int = 8) -> str:
    return draw(st.sampled_from("123456789")) + draw(st.text(DIGITS, min_size=low - 1, max_size=high - 1))


@st.composite
def domestic_phones(draw) -> str:
    """`040 123 4567`, `040-1234567`, `0401234567`, `09 1234 567`, `040/123 4567`,
    `040.123.4567`, `040 12 34 567`, `070-123 45 67`, `040-123-4567` (not the
    parenthesised form: see below). After a punctuation mark come 3 or more digits."""
    area, number = draw(st.sampled_from(DOMESTIC_AREAS)), _subscriber(draw)
    form = draw(st.sampled_from(["spaces", "glued", "dash", "dash spaces", "dashes", "slash", "dots"]))
    if form == "glued":
        return area + number
    if form == "spaces":
        return area + " " + " ".join(_groups(draw, number, 2))
    if form == "dash":
        return area + "-" + number
    if form == "dash spaces":
        return area + "-" + " ".join(_groups(draw, number, 3))
    if form == "dashes":
        return area + "-" + "-".join(_groups_of_3_or_more(draw, number))
    if form == "slash":
        return area + "/" + number[:3] + " " + " ".join(_groups(draw, number[3:], 2))
    number += draw(st.text(DIGITS, min_size=max(0, 6 - len(number)), max_size=max(0, 6 - len(number))))
    return area + "." + number[:3] + "." + ".".join(_groups_of_3_or_more(draw, number[3:]))


@st.composite
def parenthesised_phones(draw) -> str:
    """`(09) 123 4567`, `(040)1234567`."""
    area, number = draw(st.sampled_from(DOMESTIC_AREAS)), _subscriber(draw)
    return f"({area})" + draw(st.sampled_from([" ", ""])) + " ".join(_groups(draw, number, 2))


@st.composite
def international_phones(draw, prefix: str) -> str:
    """`+358 40 123 4567`, `+358 (0)40 123 4567`, `+358401234567`, `00358 40 123 4567`,
    `+46 70 123 45 67`, grouped with spaces, dots or dashes."""
    country = draw(st.sampled_from(["358", "358", "46", "47", "49", "44", "1", "372"]))
    if country == "358":
        area, number = draw(st.sampled_from([a[1:] for a in DOMESTIC_AREAS])), _subscriber(draw)
        zero = draw(st.sampled_from(["", "", "(0)", "(0) "]))
    else:
        area, number, zero = draw(st.sampled_from("123456789")), _subscriber(draw, 6, 9), ""
    after_country = draw(st.sampled_from([" ", " ", "-", ".", ""]))
    separator = draw(st.sampled_from([" ", " ", "-", ".", ""]))
    return prefix + country + after_country + zero + area + separator + separator.join(_groups(draw, number, 2))


def _iban_check(country: str, bban: str) -> str:
    number = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{98 - int(number) % 97:02d}"


IBAN_FORMS = {"FI": (14, 0), "SE": (20, 0), "DE": (18, 0), "NO": (11, 0), "DK": (14, 0), "EE": (16, 0),
              "FR": (23, 0), "GB": (18, 4), "NL": (14, 4), "IT": (23, 1)}


@st.composite
def ibans(draw) -> str:
    """A valid IBAN of a registry country (`FI21 1234 5600 0007 85`), whole or in groups
    of four; some countries' account numbers begin with letters (`GB29 NWBK ...`)."""
    country = draw(st.sampled_from(sorted(IBAN_FORMS)))
    length, letters = IBAN_FORMS[country]
    bban = draw(st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=letters, max_size=letters))
    bban += draw(st.text(DIGITS, min_size=length - letters, max_size=length - letters))
    iban = country + _iban_check(country, bban) + bban
    if draw(st.booleans()):
        iban = " ".join(iban[i:i + 4] for i in range(0, len(iban), 4))
    return iban.lower() if country == "FI" and draw(st.integers(0, 9)) == 0 else iban


# ---- the random text around them ---------------------------------------------------------

# Letters (also Finnish and other scripts), digits, `_`, punctuation, blanks, any other
# character. Never `@`: text glued to an e-mail address is a case of its own.
TEXT_CHARS = st.one_of(
    st.sampled_from(list("abcxyzABCXYZäöåÄÖÅéß_0123456789 .,;:-/()!?'\"+#%&*=[]\n\t\u00a0€中😀")),
    st.characters(exclude_categories=("Cs",), exclude_characters="@"),
)
AFFIX = st.text(TEXT_CHARS, max_size=6)
# A phone number may not follow a letter, digit, `_`, `/` or `-` (ids are no phone numbers),
# nor a dot after a digit (`1.3.2022`, `0.05`).
PHONE_PREFIX = AFFIX.filter(lambda text: not re.search(r"[0-9A-Za-z_/-]$|[0-9]\.$", text))


def ascii_digits(text: str) -> int:
    return sum(c in DIGITS for c in text)


def assert_masked(datum: str, prefix: str, suffix: str) -> None:
    """The datum is gone from mask(prefix + datum + suffix): the masked text has no more
    digits than the text around the datum had, and holds no 5-character piece of the
    datum with 3 or more digits that is not in the surrounding text itself."""
    text = prefix + datum + suffix
    masked = mask_string(text)
    assert ascii_digits(masked) <= ascii_digits(prefix) + ascii_digits(suffix), (text, masked)
    for start in range(len(datum) - 4):
        piece = datum[start:start + 5]
        if ascii_digits(piece) >= 3 and piece not in prefix and piece not in suffix:
            assert piece not in masked, (text, masked, piece)
    assert "@" not in masked, (text, masked)
    assert pl.select(holds_personal_data(pl.lit(text))).item()


@SETTINGS
@given(identity_codes(), AFFIX, AFFIX)
def test_identity_codes_glued_to_anything_are_masked(code, prefix, suffix):
    assert_masked(code, prefix, suffix)


@SETTINGS
@given(business_ids(), AFFIX, AFFIX)
def test_business_ids_glued_to_anything_are_masked(code, prefix, suffix):
    assert_masked(code, prefix, suffix)


@SETTINGS
@given(e_mails(), AFFIX, AFFIX)
def test_e_mail_addresses_are_masked(address, prefix, suffix):
    assert_masked(address, prefix, suffix)


# An IBAN right after a digit could be read from an earlier start (`NO12` + `FI21...`).
@SETTINGS
@given(ibans(), AFFIX.filter(lambda text: not text[-1:].isdigit()), AFFIX)
def test_ibans_are_masked(iban, prefix, suffix):
    assert_masked(iban, prefix, suffix)


# Not after a phone number: more digits (they make another, longer number, which may
# be read from a group beginning `00`), nor `-123A`, which ends in an identity code.
PHONE_SUFFIX = AFFIX.filter(lambda text: not re.match(r"\s?[0-9]|[-+A-FU-Ya-fu-y][0-9]", text))


@SETTINGS
@given(domestic_phones(), PHONE_PREFIX, PHONE_SUFFIX)
def test_domestic_phone_numbers_are_masked(phone, prefix, suffix):
    assert_masked(phone, prefix, suffix)


@SETTINGS
@given(parenthesised_phones(), AFFIX, PHONE_SUFFIX)
def test_phone_numbers_with_the_area_code_in_parentheses_are_masked(phone, prefix, suffix):
    assert_masked(phone, prefix, suffix)


# `+` after a digit is an identity code's century sign (`010180+1232`).
@SETTINGS
@given(international_phones("+"), AFFIX.filter(lambda text: not re.search(r"[0-9]$", text)), PHONE_SUFFIX)
def test_international_phone_numbers_with_plus_are_masked(phone, prefix, suffix):
    assert_masked(phone, prefix, suffix)


@SETTINGS
@given(international_phones("00"), PHONE_PREFIX, PHONE_SUFFIX)
def test_international_phone_numbers_with_00_are_masked(phone, prefix, suffix):
    assert_masked(phone, prefix, suffix)


# ---- what is not personal data ----------------------------------------------------------


@st.composite
def amounts(draw) -> str:
    euros = draw(st.integers(0, 99_999_999))
    cents = draw(st.integers(0, 99))
    grouped = f"{euros:,}".replace(",", draw(st.sampled_from([" ", "\u00a0", ""])))
    return draw(st.sampled_from(["", "-"])) + grouped + draw(st.sampled_from([f",{cents:02d}", f".{cents:02d}", ""]))


@st.composite
def dates_and_times(draw) -> str:
    day = draw(st.dates(dt.date(1950, 1, 1), dt.date(2099, 12, 31)))
    finnish = draw(st.sampled_from([f"{day.day}.{day.month}.{day.year}", day.strftime("%d.%m.%Y"), day.strftime("%d.%m.")]))
    hour, minute = draw(st.integers(0, 23)), draw(st.sampled_from([0, 15, 30, 45]))
    time = draw(st.sampled_from([f"{hour}.{minute:02d}", f"{hour:02d}.{minute:02d}", f"{hour:02d}:{minute:02d}"]))
    month = draw(st.sampled_from([f"{day.month:02d}/{day.year}", f"{day.month:02d}.{day.year}", f"{day.month}/{day.year % 100:02d}"]))
    return draw(st.sampled_from([
        finnish, day.isoformat(), f"{day.isoformat()} {hour:02d}:{minute:02d}:00", f"{finnish} klo {time}",
        f"{finnish} {hour:02d}:{minute:02d}", f"klo {time}-{(hour + 1) % 24:02d}.{minute:02d}", f"{finnish}-{finnish}",
        month, f"{month}-{month}",
    ]))


@st.composite
def real_ids(draw) -> str:
    n = draw(st.integers(1, 9_999_999))
    year = draw(st.integers(2000, 2099))
    return draw(st.sampled_from([
        f"H{n:08d}", f"V{n:08d}", f"{year}-{n % 1_000_000:06d}", f"MAKS-{year}-{n:07d}", f"{year}-{n:07d}",
        f"HBAD-{n % 1000:03d}", f"KEHA/{n % 10000}/{year}", f"VN/{n:07d}/{year}",
    ]))


WORDS = st.sampled_from(["", " ", "summa ", "päätös ", "klo ", "(", " e", " euroa.", ", kiitos", "\n"])


@SETTINGS
@given(st.lists(st.tuples(WORDS, st.one_of(amounts(), dates_and_times(), real_ids()), WORDS), min_size=1, max_size=4))
def test_amounts_dates_times_and_ids_are_left_alone(parts):
    text = " ".join(before + value + after for before, value, after in parts)
    assert mask_string(text) == text
    assert not pl.select(holds_personal_data(pl.lit(text))).item()


# ---- one masking, cell by cell or a column at once ---------------------------------------

ANY_PERSONAL_DATUM = st.one_of(
    identity_codes(), business_ids(), e_mails(), ibans(), domestic_phones(), parenthesised_phones(),
    international_phones("+"), international_phones("00"),
)
ANY_DATUM = st.one_of(ANY_PERSONAL_DATUM, amounts(), dates_and_times(), real_ids())
CELLS = st.one_of(st.none(), st.text(TEXT_CHARS, max_size=20), st.tuples(AFFIX, ANY_DATUM, AFFIX).map("".join))


@SETTINGS
@given(st.lists(CELLS, max_size=30))
def test_column_masking_equals_masking_each_cell(cells):
    frame = pl.DataFrame({"vapaa_teksti": cells, "n": range(len(cells))}, schema={"vapaa_teksti": pl.String, "n": pl.Int64})
    masked = mask_column(frame, "vapaa_teksti")
    assert masked["n"].to_list() == list(range(len(cells)))
    assert masked["vapaa_teksti"].to_list() == [None if cell is None else mask_string(cell) for cell in cells]
    assert masked.equals(frame.with_columns(mask_free_text(pl.col("vapaa_teksti"))))
    # a text holds personal data exactly when masking changes it
    held = frame.select(holds_personal_data(pl.col("vapaa_teksti"))).to_series().to_list()
    assert held == [None if cell is None else mask_string(cell) != cell for cell in cells]


@SETTINGS
@given(CELLS.filter(lambda cell: cell is not None))
def test_masking_is_idempotent(cell):
    once = mask_string(cell)
    assert mask_string(once) == once
