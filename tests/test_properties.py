"""Property-based tests: parsers, and the accounting invariant on generated files."""

import datetime as dt
import tempfile
from decimal import Decimal
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings, strategies as st

from keha_maksatus import warehouse
from keha_maksatus.config import load_settings
from keha_maksatus.ingest import parsing
from keha_maksatus.ingest.store import ingest_landing

from conftest import DECISION_HEADER, TEST_KEY, write_export


def parse_one(parser, text):
    return pl.DataFrame({"v": [text]}, schema={"v": pl.String}).select(parser("v").alias("out"))["out"][0]


def finnish_amount(value: Decimal, thousands: str) -> str:
    whole, _, cents = f"{value:.2f}".partition(".")
    sign = "-" if whole.startswith("-") else ""
    digits = whole.lstrip("-")
    groups = []
    while digits:
        groups.insert(0, digits[-3:])
        digits = digits[:-3]
    return f"{sign}{thousands.join(groups)},{cents}"


@given(st.decimals(min_value=-10**9, max_value=10**9, places=2, allow_nan=False), st.sampled_from(["", " ", "\u00a0"]))
def test_decimal_comma_with_any_thousands_spacing(value, thousands):
    assert parse_one(parsing.parse_decimal, finnish_amount(value, thousands)) == float(value)
    assert parse_one(parsing.parse_decimal, f"{value:.2f}") == float(value)


@given(st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2100, 12, 31)), st.booleans())
def test_dates_in_every_accepted_form(day, zero_padded):
    finnish = f"{day.day:02d}.{day.month:02d}.{day.year}" if zero_padded else f"{day.day}.{day.month}.{day.year}"
    assert parse_one(parsing.parse_date, finnish) == day
    assert parse_one(parsing.parse_date, day.isoformat()) == day
    assert parse_one(parsing.parse_datetime, f"{finnish} 13:45") == dt.datetime.combine(day, dt.time(13, 45))


@given(st.text(max_size=30))
def test_parsers_never_raise_on_arbitrary_text(text):
    for parser in (parsing.parse_decimal, parsing.parse_date, parsing.parse_datetime, parsing.parse_score, parsing.parse_integer):
        parse_one(parser, text)  # null or a value, never an exception


EXPORT_LIKE_TEXT = st.one_of(
    st.text(max_size=25),
    st.text(alphabet="aAäÄǅß \t\u00a0\u2003xY", max_size=6),
    st.text(alphabet="0123456789.,:- T\u00a0", max_size=20),
    st.builds(lambda d, h, m, sep: f"{d.day}.{d.month}.{d.year}{sep}{h}:{m:02d}",
              st.dates(), st.integers(0, 30), st.integers(0, 70), st.sampled_from([" ", "  ", "T", ""])),
)


@given(EXPORT_LIKE_TEXT)
def test_fast_parsers_agree_with_the_full_ones(text):
    """Wherever a fast parser gives a value, the full parser gives the same; where it gives
    none, validation falls back to the full one (schemas.ColumnSpec.fast_parse)."""
    pairs = {
        parsing.fast_decimal: parsing.parse_decimal, parsing.fast_date: parsing.parse_date,
        parsing.fast_datetime: parsing.parse_datetime, parsing.fast_score: parsing.parse_score,
        parsing.fast_integer: parsing.parse_integer, parsing.fast_clean_text: parsing.clean_text,
        parsing.fast_lower_text: parsing.lower_text, parsing.fast_upper_text: parsing.upper_text,
    }
    for fast, full in pairs.items():
        quick = parse_one(fast, text)
        if quick is not None:
            assert quick == parse_one(full, text), (fast.__name__, text)


def test_fast_text_cleaners_agree_on_every_character():
    """Every Unicode character, alone and inside text: a fast cleaner either leaves the
    text to the full one (null) or gives what the full one gives."""
    chars = [chr(i) for i in range(0x110000) if not 0xD800 <= i <= 0xDFFF]
    texts = pl.DataFrame({"v": chars + [f"a{c}b" for c in chars] + [f"A {c}" for c in chars]})
    for fast, full in ((parsing.fast_clean_text, parsing.clean_text), (parsing.fast_lower_text, parsing.lower_text),
                       (parsing.fast_upper_text, parsing.upper_text)):
        both = texts.select(fast("v").alias("fast"), full("v").alias("full"), "v")
        wrong = both.filter(pl.col("fast").is_not_null() & (pl.col("fast") != pl.col("full")))
        assert wrong.is_empty(), (fast.__name__, wrong.head(5).to_dicts())
        assert both["fast"].null_count() < both.height  # it does take the plain cases


@given(st.integers(-20, 20))
def test_scores_parse_as_written(score):
    assert parse_one(parsing.parse_score, str(score)) == score


CELLS = {
    "hakemus_id": st.sampled_from(["H1", "H2", "H3", "H4", "", "H1"]),
    "tukimuoto": st.sampled_from(["palkkatuki", "esr", "uusi", ""]),
    "yksikko": st.sampled_from(["TE-UUS", "ELY-KES", ""]),
    "saapunut": st.sampled_from(["1.2.2022", "2022-02-01", "31.2.2022", "1.2.22", "", "x"]),
    "paatetty": st.sampled_from(["", "15.2.2022", "1.1.2022", "1.1.2030", "huomenna"]),
    "paatos": st.sampled_from(["", "myönteinen", "KIELTEINEN", "hylätty"]),
    "haettu_eur": st.sampled_from(["1 234,50", "100.00", "-5", "", "abc"]),
    "maksettu_eur": st.sampled_from(["", "10,00", "x"]),
    "asiakastunnus": st.sampled_from(["131052-308T", "0737546-2", "131052-308A", "", "0737546-3"]),
    "taydennys_pv": st.sampled_from(["", "3", "-1", "kolme"]),
}
ROW = st.fixed_dictionaries(CELLS).map(lambda cells: ";".join(cells[c] for c in DECISION_HEADER.split(";")))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(ROW, min_size=0, max_size=12), min_size=1, max_size=3))
def test_every_row_is_valid_or_quarantined(files):
    with tempfile.TemporaryDirectory() as folder:
        landing = Path(folder) / "landing"
        for index, rows in enumerate(files):
            write_export(landing, f"maksatuspaatokset_2022-06-{index + 10}.csv", DECISION_HEADER, rows)
        con = warehouse.connect(Path(folder) / "work")
        try:
            ingest_landing(con, landing, TEST_KEY, load_settings())
            log = con.execute(
                """
                SELECT l.file_name, l.status, l.rows_read, l.rows_valid, l.rows_rejected,
                       (SELECT count(DISTINCT line) FROM quality.quarantine q WHERE q.file_id = l.file_id)
                FROM quality.ingest_log l ORDER BY l.file_name
                """
            ).fetchall()
            rejected_lines = set(con.execute("SELECT file_name, line FROM quality.quarantine").fetchall())
            current = set(con.execute("SELECT hakemus_id, file_name, line FROM core.decisions").fetchall())
        finally:
            con.close()
    by_name = {row[0]: row for row in log}
    ingested_contents = set()
    expected_current = {}  # id -> (file, line): the valid row of the latest used file
    for index, rows in enumerate(files):
        name = f"maksatuspaatokset_2022-06-{index + 10}.csv"
        _, status, read, valid, rejected, stored_rejected = by_name[name]
        content = tuple(rows)
        if content in ingested_contents:  # content ingested under another name
            assert status == "duplicate_content"
            continue
        # content quarantined whole was not ingested: under another name it is read again
        assert read == len(rows) == valid + rejected
        assert stored_rejected == rejected
        if status == "ingested":
            ingested_contents.add(content)
            for line, row in enumerate(rows, start=2):
                if (name, line) not in rejected_lines:
                    expected_current[row.split(";")[0].strip()] = (name, line)
    assert current == {(hakemus_id, name, line) for hakemus_id, (name, line) in expected_current.items()}
