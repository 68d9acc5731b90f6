"""Reading, in detail: names taken literally, typed Parquet and Excel cells, blank rows,
and reader errors that never quote the file's content."""

import datetime as dt
import os
import zoneinfo
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
import xlsxwriter
from hypothesis import HealthCheck, given, settings, strategies as st

from keha_maksatus.ingest import readers
from keha_maksatus.ingest.readers import UnreadableFile, read_export
from keha_maksatus.ingest.schemas import DECISIONS, FEEDBACK
from keha_maksatus.ingest.validation import validate_export, validate_read

from conftest import DECISION_HEADER, FEEDBACK_HEADER, HETU, decision, response, write_export

EXTRACT = dt.date(2022, 6, 30)
HELSINKI = zoneinfo.ZoneInfo("Europe/Helsinki")
UTC = dt.timezone.utc


def rejected(result) -> set[tuple[int, str, str]]:
    return {(r["line"], r["column"], r["rule"]) for r in result.rejections.iter_rows(named=True)}


# --- file names are literal ----------------------------------------------------------


def _write(folder: Path, name: str, ids: list[str], file_format: str) -> Path:
    """A decisions export holding the given ids, in the given format."""
    path = folder / name
    if file_format == "csv":
        return write_export(folder, name, DECISION_HEADER, [decision(i, "1.2.2022") for i in ids])
    frame = pl.DataFrame({"hakemus_id": ids, "saapunut": ["1.2.2022"] * len(ids)})
    if file_format == "parquet":
        frame.write_parquet(path)
    else:
        frame.write_excel(path)
    return path


GLOB_NAMES = [
    ("maksatuspaatokset_2022-12-3?.{ext}", "maksatuspaatokset_2022-12-31.{ext}"),
    ("maksatuspaatokset_2022-12-*.{ext}", "maksatuspaatokset_2022-12-01.{ext}"),
    ("maksatuspaatokset_2022-12-[13].{ext}", "maksatuspaatokset_2022-12-1.{ext}"),
    ("maksatuspaatokset_[!x]*.{ext}", "maksatuspaatokset_2022.{ext}"),
    ("maksatuspaatokset_**.{ext}", "maksatuspaatokset_a.{ext}"),
]


@pytest.mark.parametrize("file_format", ["csv", "parquet", "xlsx"])
@pytest.mark.parametrize("pattern, neighbour", GLOB_NAMES)
def test_glob_characters_in_a_name_are_plain_characters(tmp_path, file_format, pattern, neighbour):
    """A name holding `?`, `*` or `[...]` reads that one file, never the others the
    pattern would match."""
    name, other = pattern.format(ext=file_format), neighbour.format(ext=file_format)
    _write(tmp_path, other, ["OLD1", "OLD2"], file_format)
    _write(tmp_path, "maksatuspaatokset_2022-12-30." + file_format, ["OLD3"], file_format)
    path = _write(tmp_path, name, ["NEW"], file_format)
    assert read_export(path).frame["hakemus_id"].to_list() == ["NEW"]
    assert read_export(str(path)).frame["hakemus_id"].to_list() == ["NEW"]


def test_a_glob_name_without_its_own_file_is_not_read_from_others(tmp_path):
    _write(tmp_path, "maksatuspaatokset_2022-12-31.csv", ["OLD"], "csv")
    with pytest.raises(UnreadableFile, match="cannot be opened"):
        read_export(tmp_path / "maksatuspaatokset_2022-12-3?.csv")


@pytest.mark.parametrize("raw_name", [
    b"maksatuspaatokset_2022-06-30_\xff\xfe.csv",
    b"maksatuspaatokset_2022-06-30_\xe4\xf6.csv",  # Windows-1252 letters
    b"maksatuspaatokset_2022-06-30_\x1b[1m\n.csv",
])
def test_names_that_are_not_utf8_read_fine(tmp_path, raw_name):
    folder = os.fsencode(tmp_path)
    raw_path = os.path.join(folder, raw_name)
    with open(raw_path, "wb") as handle:
        handle.write((DECISION_HEADER + "\r\n" + decision("H1", "1.2.2022") + "\r\n").encode())
    for path in (raw_path, Path(os.fsdecode(raw_path))):
        assert read_export(path).frame["hakemus_id"].to_list() == ["H1"]


def test_links_and_pipes_are_refused_not_followed(tmp_path):
    target = write_export(tmp_path / "outside", "x.csv", DECISION_HEADER, [decision("H1", "1.2.2022")])
    (tmp_path / "maksatuspaatokset_2022-06-30.csv").symlink_to(target)
    os.mkfifo(tmp_path / "maksatuspaatokset_2022-07-30.csv")
    with pytest.raises(UnreadableFile, match="symbolic link"):
        read_export(tmp_path / "maksatuspaatokset_2022-06-30.csv")
    with pytest.raises(UnreadableFile, match="not a regular file"):  # and does not wait for a writer
        read_export(tmp_path / "maksatuspaatokset_2022-07-30.csv")


# --- typed Parquet cells -------------------------------------------------------------


def _decisions_frame(**columns) -> pl.DataFrame:
    """Three decision rows; keyword arguments replace or add columns."""
    base = {
        "hakemus_id": ["H1", "H2", "H3"],
        "tukimuoto": ["palkkatuki"] * 3,
        "yksikko": ["TE-UUS"] * 3,
        "saapunut": ["1.2.2022"] * 3,
        "paatetty": ["15.2.2022", "", "20.2.2022"],
        "paatos": ["myönteinen", "", "kielteinen"],
        "haettu_eur": ["1000,00"] * 3,
        "maksettu_eur": [""] * 3,
        "asiakastunnus": [HETU] * 3,
        "taydennys_pv": [""] * 3,
    }
    return pl.DataFrame({**base, **columns}, strict=False)


def _validated_parquet(tmp_path, frame: pl.DataFrame, kind=DECISIONS):
    path = tmp_path / f"{kind.prefix}2022-06-30.parquet"
    frame.write_parquet(path)
    return validate_read(read_export(path), kind, EXTRACT)


def test_parquet_dates_and_timestamps_naive_and_time_zone_aware(tmp_path):
    frame = _decisions_frame(
        saapunut=pl.Series([dt.date(2022, 2, 1), dt.date(2022, 2, 2), dt.date(2022, 2, 3)]),
        # Helsinki midnight of 15.2, 16.2 and 17.2, written three ways
        paatetty=pl.Series([
            dt.datetime(2022, 2, 14, 22, 0, tzinfo=UTC),
            dt.datetime(2022, 2, 16, 0, 0, tzinfo=HELSINKI),
            dt.datetime(2022, 2, 16, 17, 0, tzinfo=zoneinfo.ZoneInfo("America/New_York")),
        ]),
        paatos=["myönteinen"] * 3,
    )
    result = _validated_parquet(tmp_path, frame)
    assert rejected(result) == set()
    assert result.valid["saapunut"].to_list() == [dt.date(2022, 2, 1), dt.date(2022, 2, 2), dt.date(2022, 2, 3)]
    assert result.valid["paatetty"].to_list() == [dt.date(2022, 2, 15), dt.date(2022, 2, 16), dt.date(2022, 2, 17)]


@pytest.mark.parametrize("time_unit", ["ms", "us", "ns"])
def test_parquet_timestamp_in_a_date_column_is_its_date_whatever_the_time(tmp_path, time_unit):
    # The contract: a typed date or timestamp is a date (the midnight rule is for text).
    moments = [dt.datetime(2022, 2, 15), dt.datetime(2022, 2, 15, 10, 30), dt.datetime(2022, 2, 15, 23, 59, 59, 1000)]
    frame = _decisions_frame(paatetty=pl.Series(moments, dtype=pl.Datetime(time_unit)), paatos=["myönteinen"] * 3)
    result = _validated_parquet(tmp_path, frame)
    assert rejected(result) == set()
    assert result.valid["paatetty"].to_list() == [dt.date(2022, 2, 15)] * 3


def test_text_date_time_in_a_parquet_date_column_keeps_the_midnight_rule(tmp_path):
    frame = _decisions_frame(paatetty=["2022-02-15 00:00:00", "2022-02-15 10:30:00", "15.2.2022"], paatos=["myönteinen"] * 3)
    result = _validated_parquet(tmp_path, frame)
    assert rejected(result) == {(3, "paatetty", "date_format")}


def test_parquet_time_zone_aware_date_time_of_a_response_in_helsinki_time(tmp_path):
    answered = [
        dt.datetime(2022, 3, 1, 8, 5, 30, tzinfo=UTC),
        dt.datetime(2022, 6, 29, 21, 30, tzinfo=UTC),  # past midnight in Helsinki
        dt.datetime(2022, 3, 1, 10, 5, 30, 250000, tzinfo=HELSINKI),
    ]
    frame = pl.DataFrame({
        "vastaus_id": ["V1", "V2", "V3"], "kysely": ["kohtaaminen"] * 3, "palvelu": ["maksatus"] * 3,
        "vastattu": pl.Series(answered), "arvosana": [4.0, 5.0, None],
    })
    result = _validated_parquet(tmp_path, frame, FEEDBACK)
    assert rejected(result) == set()
    assert result.valid["vastattu"].to_list() == [
        dt.datetime(2022, 3, 1, 10, 5, 30), dt.datetime(2022, 6, 30, 0, 30), dt.datetime(2022, 3, 1, 10, 5, 30)
    ]
    assert result.valid["arvosana"].to_list() == [4, 5, None]


def test_parquet_integral_floats_are_integers(tmp_path):
    frame = _decisions_frame(
        haettu_eur=pl.Series([1000.0, 1234.5, 0.0]),
        maksettu_eur=pl.Series([None, 12.25, 1e6], dtype=pl.Float32),
        taydennys_pv=pl.Series([3.0, None, 0.0]),
    )
    result = _validated_parquet(tmp_path, frame)
    assert rejected(result) == set()
    assert result.valid["haettu_eur"].to_list() == [1000.0, 1234.5, 0.0]
    assert result.valid["maksettu_eur"].to_list() == [None, 12.25, 1e6]
    assert result.valid["taydennys_pv"].to_list() == [3, 0, 0]


def test_parquet_non_integral_or_odd_numbers_are_rejected_not_rounded(tmp_path):
    frame = _decisions_frame(taydennys_pv=pl.Series([2.5, float("nan"), 4.0]))
    result = _validated_parquet(tmp_path, frame)
    assert rejected(result) == {(2, "taydennys_pv", "integer_format"), (3, "taydennys_pv", "integer_format")}


def test_parquet_float_scores(tmp_path):
    frame = pl.DataFrame({
        "vastaus_id": ["V1", "V2", "V3", "V4"], "kysely": ["kohtaaminen"] * 4, "palvelu": ["maksatus"] * 4,
        "vastattu": [dt.date(2022, 3, 1)] * 4, "arvosana": [4.0, 1.0, 4.5, 6.0],
    })
    result = _validated_parquet(tmp_path, frame, FEEDBACK)
    assert result.valid["arvosana"].to_list() == [4, 1]
    assert rejected(result) == {(4, "arvosana", "score_1_to_5_or_EOS"), (5, "arvosana", "score_1_to_5_or_EOS")}


def test_parquet_integers_decimals_and_categoricals(tmp_path):
    frame = _decisions_frame(
        hakemus_id=pl.Series(["H1", "H2", "H3"], dtype=pl.Categorical),
        haettu_eur=pl.Series([Decimal("1000.00"), Decimal("1234.50"), Decimal("0.10")], dtype=pl.Decimal(10, 2)),
        taydennys_pv=pl.Series([3, None, 0], dtype=pl.UInt16),
    )
    result = _validated_parquet(tmp_path, frame)
    assert rejected(result) == set()
    assert result.valid["hakemus_id"].to_list() == ["H1", "H2", "H3"]
    assert result.valid["haettu_eur"].to_list() == [1000.0, 1234.5, 0.1]
    assert result.valid["taydennys_pv"].to_list() == [3, 0, 0]


def test_parquet_extra_columns_of_any_type_reject_nothing(tmp_path):
    frame = _decisions_frame(
        lista=pl.Series([[1, 2], None, []]),
        rakenne=pl.Series([{"a": 1, "b": "x"}, None, {"a": None, "b": None}]),
        sisakkainen=pl.Series([[{"d": dt.date(2022, 1, 1)}], None, [None]]),
        binaari=pl.Series([b"\xff\x00", None, b"ok"]),
        binaarilista=pl.Series([[b"\xff"], None, []]),
        tyhja=pl.Series([None, None, None]),
        kesto=pl.Series([dt.timedelta(days=1), None, dt.timedelta(seconds=5)]),
        kello=pl.Series([dt.time(10, 5), None, dt.time(0, 0)]),
        totuus=pl.Series([True, None, False]),
        taulukko=pl.Series([[1, 2], [3, 4], None], dtype=pl.Array(pl.Int64, 2)),
    )
    result = _validated_parquet(tmp_path, frame)
    assert rejected(result) == set()
    assert result.valid.height == 3
    assert set(result.extra_columns) == {
        "lista", "rakenne", "sisakkainen", "binaari", "binaarilista", "tyhja", "kesto", "kello", "totuus", "taulukko"
    }


def test_parquet_binary_strings_are_read_as_text(tmp_path):
    """Older writers store text as plain byte arrays."""
    frame = _decisions_frame(hakemus_id=pl.Series([b"H1", b"H2", "H\u00e43".encode()]))
    result = _validated_parquet(tmp_path, frame)
    assert result.valid["hakemus_id"].to_list() == ["H1", "H2", "H\u00e43"]


def test_column_names_the_reader_uses_itself_are_kept_apart(tmp_path):
    frame = _decisions_frame(line=[7, 8, 9], _extra_fields=["a", "b", "c"])
    result = _validated_parquet(tmp_path, frame)
    assert result.valid["line"].to_list() == [2, 3, 4]
    assert set(result.extra_columns) == {"line (in file)", "_extra_fields (in file)"}
    header = DECISION_HEADER + ";Line"
    path = write_export(tmp_path, "maksatuspaatokset_2022-06-30.csv", header, [decision("H1", "1.2.2022") + ";99"])
    assert read_export(path).frame.select("line", "line (in file)").row(0) == (2, "99")


@settings(max_examples=200, deadline=None)
@given(st.datetimes(min_value=dt.datetime(1950, 1, 1), max_value=dt.datetime(2099, 12, 31)),
       st.sampled_from(["UTC", "Europe/Helsinki", "America/New_York", "Asia/Tokyo", "Asia/Kolkata"]))
def test_any_time_zone_aware_moment_is_its_helsinki_wall_clock_time(utc_moment, zone):
    column = pl.Series([utc_moment], dtype=pl.Datetime("us", "UTC")).dt.convert_time_zone(zone)
    local = utc_moment.replace(tzinfo=UTC).astimezone(HELSINKI).replace(tzinfo=None)
    assert dt.datetime.fromisoformat(readers.cell_text(column).item()) == local


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.integers(-(2**53), 2**53).map(float), st.floats(allow_nan=True, allow_infinity=True)))
def test_a_float_cell_reads_as_the_same_number(value):
    """An integral float is written without decimals, any other float as a number that
    reads back as itself; nothing is rounded."""
    text = readers.cell_text(pl.Series([value], dtype=pl.Float64)).item()
    if value == value and abs(value) < 2**53 and value == int(value):
        assert text == str(int(value))
    elif value == value and abs(value) != float("inf"):
        assert float(text) == value


# --- typed Excel cells ---------------------------------------------------------------


def _workbook(path: Path, header: str, rows: dict[int, list]) -> Path:
    """An .xlsx whose first sheet has the header on row 1 and the given cells, by sheet
    row number (1-based); a dt.datetime / dt.date is written as a real date cell."""
    book = xlsxwriter.Workbook(path)
    sheet = book.add_worksheet()
    date_format = book.add_format({"num_format": "d.m.yyyy"})
    moment_format = book.add_format({"num_format": "d.m.yyyy h:mm:ss"})
    sheet.write_row(0, 0, header.split(";"))
    for row_number, cells in rows.items():
        for column, value in enumerate(cells):
            if isinstance(value, dt.datetime):
                sheet.write_datetime(row_number - 1, column, value, moment_format)
            elif isinstance(value, dt.date):
                sheet.write_datetime(row_number - 1, column, dt.datetime.combine(value, dt.time()), date_format)
            elif isinstance(value, (int, float)):
                sheet.write_number(row_number - 1, column, value)
            elif value is not None:
                sheet.write_string(row_number - 1, column, value)
    book.add_worksheet("toinen").write_row(0, 0, ["not", "read"])
    book.close()
    return path


def test_excel_date_cells_numbers_and_sheet_row_numbers(tmp_path):
    path = _workbook(tmp_path / "maksatuspaatokset_2022-06-30.xlsx", DECISION_HEADER, {
        2: ["H1", "palkkatuki", "TE-UUS", dt.date(2022, 2, 1), dt.date(2022, 2, 15), "myönteinen", 1000.0, 250.5, HETU, 3.0],
        # row 3 empty: not a row, and the next keeps its sheet row number
        4: ["H2", "esr", "ELY-KES", dt.datetime(2022, 2, 1), None, None, 1234, None, HETU, None],
        5: ["H3", "esr", "ELY-KES", dt.datetime(2022, 2, 1, 10, 30), None, None, 10, None, HETU, None],
        6: ["H4", "esr", "ELY-KES", 44593, "2022-02-20 00:00:00", "myönteinen", "1 000,00", None, HETU, "2"],
        8: [None, None, None, " ", None, None, None, None, None, None],  # only a blank cell: a row
    })
    result = validate_export(read_export(path).frame, DECISIONS, EXTRACT, spreadsheet=True)
    assert result.rows_read == 5
    valid = {r["hakemus_id"]: r for r in result.valid.to_dicts()}
    assert set(valid) == {"H1", "H2", "H4"}
    assert valid["H1"]["saapunut"] == dt.date(2022, 2, 1) and valid["H1"]["paatetty"] == dt.date(2022, 2, 15)
    assert (valid["H1"]["haettu_eur"], valid["H1"]["maksettu_eur"], valid["H1"]["taydennys_pv"]) == (1000.0, 250.5, 3)
    assert valid["H2"]["haettu_eur"] == 1234.0
    assert valid["H4"]["saapunut"] == dt.date(2022, 2, 1) and valid["H4"]["taydennys_pv"] == 2
    assert {(line, column) for line, column, _ in rejected(result)} >= {(5, "saapunut"), (8, "hakemus_id")}
    assert (5, "saapunut", "date_format") in rejected(result)
    assert {line for line, _, _ in rejected(result)} == {5, 8}


def test_excel_date_time_cells_in_a_date_column_are_their_dates(tmp_path):
    # A column of date cells is typed: a date-time cell there is its date, as in Parquet.
    path = _workbook(tmp_path / "maksatuspaatokset_2022-06-30.xlsx", DECISION_HEADER, {
        2: ["H1", "palkkatuki", "TE-UUS", dt.datetime(2022, 2, 1, 10, 30), dt.datetime(2022, 2, 15, 23, 59), "myönteinen", 1000.0, None, HETU, None],
        3: ["H2", "esr", "ELY-KES", dt.datetime(2022, 2, 2), None, None, 1234, None, HETU, None],
    })
    read = read_export(path)
    assert set(read.timestamp_columns) == {"saapunut", "paatetty"}
    result = validate_read(read, DECISIONS, EXTRACT)
    assert rejected(result) == set()
    assert result.valid.select("saapunut", "paatetty").rows() == [
        (dt.date(2022, 2, 1), dt.date(2022, 2, 15)), (dt.date(2022, 2, 2), None)
    ]


def test_excel_scores_and_date_times(tmp_path):
    path = _workbook(tmp_path / "asiakaspalaute_2022-06-30.xlsx", FEEDBACK_HEADER, {
        2: ["V1", "kohtaaminen", "maksatus", dt.datetime(2022, 3, 1, 10, 5), 4.0],
        3: ["V2", "kohtaaminen", "maksatus", dt.date(2022, 3, 2), 5, None, None, 123],
        4: ["V3", "kohtaaminen", "maksatus", "1.3.2022 9:00", "EOS"],
        5: ["V4", "kohtaaminen", "maksatus", dt.date(2022, 3, 2), 4.5],
    })
    result = validate_export(read_export(path).frame, FEEDBACK, EXTRACT, spreadsheet=True)
    assert result.valid.select("vastaus_id", "vastattu", "arvosana", "hakemus_id").rows() == [
        ("V1", dt.datetime(2022, 3, 1, 10, 5), 4, None),
        ("V2", dt.datetime(2022, 3, 2), 5, "123"),
        ("V3", dt.datetime(2022, 3, 1, 9, 0), None, None),
    ]
    assert rejected(result) == {(5, "arvosana", "score_1_to_5_or_EOS")}


def test_excel_empty_first_sheet_says_so(tmp_path):
    path = tmp_path / "maksatuspaatokset_2022-06-30.xlsx"
    book = xlsxwriter.Workbook(path)
    book.add_worksheet()
    book.close()
    with pytest.raises(UnreadableFile, match="no header row"):
        read_export(path)


# --- CSV: midnight in a date column --------------------------------------------------


@pytest.mark.parametrize("text, valid", [
    ("2022-02-15 00:00:00", True), ("2022-02-15T00:00:00", True), ("2022-02-15 00:00:00.000000", True),
    ("2022-02-15 00:00", True), ("15.2.2022 00:00", True), ("15.2.2022 00:00:00", True), ("15.2.2022 0:00", True),
    ("2022-02-15 00:00:01", False), ("2022-02-15 10:30:00", False), ("15.2.2022 12:00", False),
    ("2022-02-15 00:00:00.500000", False), ("2022-02-15 24:00:00", False),
])
def test_a_date_column_takes_a_date_time_at_midnight_only(tmp_path, text, valid):
    path = write_export(tmp_path, "maksatuspaatokset_2022-06-30.csv", DECISION_HEADER, [decision("H1", "1.2.2022", text)])
    result = validate_export(read_export(path).frame, DECISIONS, EXTRACT)
    if valid:
        assert result.valid["paatetty"].to_list() == [dt.date(2022, 2, 15)]
    else:
        assert rejected(result) == {(2, "paatetty", "date_format")}


# --- reader errors never quote the file's content ------------------------------------

SECRET = "131052-308T"
EMAIL = "maija.meikalainen@example.fi"


def _broken_files() -> dict[str, bytes]:
    row = f"H1;palkkatuki;TE-UUS;1.2.2022;;;10;;{SECRET};"
    return {
        "unclosed_quote.csv": f'{DECISION_HEADER}\n{row}\nH2;"{SECRET} {EMAIL}\n'.encode(),
        "text_after_quote.csv": f'{DECISION_HEADER}\nH1;"{SECRET}"{EMAIL};x\n{row}\n'.encode(),
        "bom_but_not_utf8.csv": b"\xef\xbb\xbf" + f"{DECISION_HEADER}\n{row}\n".encode() * 2000 + b"\xe4" + SECRET.encode() + b"\n",
        "undefined_cp1252.csv": f"{DECISION_HEADER}\n{row}\n".encode() + b"\x81\x8d " + SECRET.encode() + b"\xe4\n",
        "odd_utf16.csv": b"\xff\xfe" + f"{DECISION_HEADER}\n{SECRET}".encode("utf-16-le") + b"\x00\xd8",
        "garbage.xlsx": b"PK\x03\x04" + f"{SECRET} {EMAIL}".encode() * 20,
        "garbage.parquet": b"PAR1" + f"{SECRET} {EMAIL}".encode() * 20 + b"PAR1",
        "text_as.parquet": f"{DECISION_HEADER}\n{row}\n".encode(),
        "text_as.xlsx": f"{DECISION_HEADER}\n{row}\n".encode(),
        "binary.csv": b"\x00\x01" + SECRET.encode() + b"\x00" * 10,
        "duplicate_header.csv": f"hakemus_id;HAKEMUS_ID\n{SECRET};{EMAIL}\n".encode(),
    }


@pytest.mark.parametrize("name", sorted(_broken_files()))
def test_reader_errors_name_what_failed_without_content(tmp_path, name):
    path = tmp_path / f"maksatuspaatokset_2022-06-30_{name}"
    path.write_bytes(_broken_files()[name])
    with pytest.raises(UnreadableFile) as raised:
        read_export(path)
    reason = str(raised.value)
    assert reason
    for fragment in (SECRET, "131052", "308T", EMAIL, "example", "\ufffd"):
        assert fragment not in reason, reason
    assert not raised.value.__cause__


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200), st.sampled_from([".csv", ".xlsx", ".parquet"]), st.sampled_from([b"", b"PK\x03\x04", b"PAR1", b'"']))
def test_no_reader_error_quotes_the_content(tmp_path, noise, suffix, prefix):
    """Whatever the bytes, read_export gives rows or an UnreadableFile whose reason
    holds nothing of the file but what it says itself."""
    path = tmp_path / f"maksatuspaatokset_2022-06-30{suffix}"
    path.write_bytes(prefix + noise + f";{SECRET};\n".encode() + noise)
    try:
        read_export(path)
    except UnreadableFile as error:
        assert SECRET not in str(error) and "308T" not in str(error)


# --- blank rows in typed formats -----------------------------------------------------


def test_parquet_null_rows_are_rows(tmp_path):
    """A Parquet row of nulls is a row (like `;;;;` in a CSV): it fails the required columns."""
    frame = _decisions_frame().vstack(pl.DataFrame({c: [None] for c in DECISIONS.column_names}, schema={c: pl.String for c in DECISIONS.column_names}))
    result = _validated_parquet(tmp_path, frame)
    assert result.rows_read == 4 and {line for line, _, _ in rejected(result)} == {5}


def test_whitespace_only_lines_and_lines_of_separators(tmp_path):
    body = "\r\n".join([
        DECISION_HEADER, " \t ", decision("H1", "1.2.2022"), ";;;;;;;;;", "", "\t", decision("H2", "1.2.2022"), "   ",
    ])
    path = tmp_path / "maksatuspaatokset_2022-06-30.csv"
    path.write_bytes(body.encode())
    result = validate_export(read_export(path).frame, DECISIONS, EXTRACT)
    assert result.rows_read == 3
    assert result.valid.select("line", "hakemus_id").rows() == [(3, "H1"), (7, "H2")]
    assert {line for line, _, _ in rejected(result)} == {4}


def test_feedback_text_with_blank_lines_inside_quotes_stays_one_record(tmp_path):
    text = '"hyvä\r\n\r\n   \r\npalvelu"'
    rows = [response("V1", "1.3.2022 10:00", "5", teksti=text), "", response("V2", "1.3.2022 10:00", "9")]
    path = tmp_path / "asiakaspalaute_2022-06-30.csv"
    path.write_bytes("\r\n".join([FEEDBACK_HEADER, *rows, ""]).encode())
    result = validate_export(read_export(path).frame, FEEDBACK, EXTRACT)
    assert result.valid["vapaa_teksti"].to_list() == ["hyvä\r\n\r\n   \r\npalvelu"]
    assert rejected(result) == {(7, "arvosana", "score_1_to_5_or_EOS")}


@pytest.mark.parametrize("line_end", ["\r\n", "\n", "\r"])
def test_a_quote_inside_an_unquoted_field_is_text(tmp_path, line_end):
    # `12" näyttö`: a double quote is special only at the start of a field.
    rows = [
        response("V1", "1.3.2022 10:00", "5", teksti='12" näyttö'), "",
        response("V2", "1.3.2022 10:00", "4", teksti='"rivi' + line_end + 'toinen"'),
        response("V3", "1.3.2022 10:00", "9", teksti='sanoi "hyvä" ja 5"'),
    ]
    path = tmp_path / "asiakaspalaute_2022-06-30.csv"
    path.write_bytes(line_end.join([FEEDBACK_HEADER, *rows, ""]).encode())
    result = validate_export(read_export(path).frame, FEEDBACK, EXTRACT)
    assert result.rows_read == 3
    assert result.valid.select("line", "vapaa_teksti").rows() == [(2, '12" näyttö'), (4, "rivi" + line_end + "toinen")]
    assert rejected(result) == {(6, "arvosana", "score_1_to_5_or_EOS")}


@pytest.mark.parametrize("text", ['"auki jää', '"suljettu"x'])
def test_a_quote_that_opens_a_field_must_close_it(tmp_path, text):
    rows = [response("V1", "1.3.2022 10:00", "5", teksti=text), response("V2", "1.3.2022 10:00", "4")]
    path = tmp_path / "asiakaspalaute_2022-06-30.csv"
    path.write_bytes("\r\n".join([FEEDBACK_HEADER, *rows, ""]).encode())
    with pytest.raises(UnreadableFile, match="cannot be read as CSV"):
        read_export(path)
