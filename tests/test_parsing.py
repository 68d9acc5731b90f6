"""Finnish numbers, dates, encodings, separators and formats."""

import datetime as dt

import polars as pl
import pytest

from keha_maksatus.ingest import parsing
from keha_maksatus.ingest.readers import UnreadableFile, read_export

from conftest import DECISION_HEADER, decision, write_export


def parse(expr_fn, values):
    return pl.DataFrame({"v": values}, schema={"v": pl.String}).select(expr_fn("v")).to_series().to_list()


def test_decimal_comma_point_and_thousands_spaces():
    values = ["1 234,50", "1234.50", "1\u00a0234,5", "12", "-3,25", "", None, "1.234,50", "abc", "1,2,3"]
    assert parse(parsing.parse_decimal, values) == [1234.5, 1234.5, 1234.5, 12.0, -3.25, None, None, None, None, None]


def test_dates_finnish_and_iso():
    values = ["1.2.2022", "01.02.2022", "2022-02-01", "31.02.2022", "1.2.22", "2022-13-01", "2022-02-01 00:00:00", "x"]
    expected = [dt.date(2022, 2, 1)] * 3 + [None, None, None, dt.date(2022, 2, 1), None]
    assert parse(parsing.parse_date, values) == expected


def test_datetimes():
    values = ["4.3.2022 9:05", "04.03.2022 09:05:33", "2022-03-04T10:11:12", "2022-03-04 10:11", "4.3.2022", "4.3.2022 25:00"]
    assert parse(parsing.parse_datetime, values) == [
        dt.datetime(2022, 3, 4, 9, 5),
        dt.datetime(2022, 3, 4, 9, 5, 33),
        dt.datetime(2022, 3, 4, 10, 11, 12),
        dt.datetime(2022, 3, 4, 10, 11),
        dt.datetime(2022, 3, 4),
        None,
    ]


def test_scores_and_no_score_token():
    values = ["5", " 4 ", "EOS", "eos", "", "4,5", "hyvä", "0"]
    assert parse(parsing.parse_score, values) == [5, 4, None, None, None, None, None, 0]
    # EOS and empty are "no score", not unparseable; 4,5 and text are unparseable.
    text = parse(parsing.score_text, values)
    assert text == ["5", "4", None, None, None, "4,5", "hyvä", "0"]


@pytest.mark.parametrize(
    "encoding, sep, expected_encoding, expected_sep",
    [
        ("utf-8", ";", "utf-8", ";"),
        ("utf-8-sig", ";", "utf-8-sig", ";"),
        ("cp1252", ";", "cp1252", ";"),
        ("utf-8", ",", "utf-8", ","),
        ("utf-8", "\t", "utf-8", "\t"),
        ("utf-16", ";", "utf-16", ";"),
    ],
)
def test_csv_encodings_and_separators(tmp_path, encoding, sep, expected_encoding, expected_sep):
    rows = [decision("H1", "1.2.2022", "15.2.2022", paatos="myönteinen", yksikko="ELY-KES")]
    if sep == ",":
        rows = [decision("H1", "1.2.2022", "15.2.2022", paatos="myönteinen", haettu="1000.00", yksikko="ELY-KES")]
    path = write_export(tmp_path, "maksatuspaatokset_2022-06-30.csv", DECISION_HEADER, rows, encoding=encoding, sep=sep)
    result = read_export(path)
    assert (result.encoding, result.separator) == (expected_encoding, expected_sep)
    assert result.frame["paatos"].to_list() == ["myönteinen"]
    assert result.frame["line"].to_list() == [2]


def test_windows_1252_detected_beyond_the_sniffed_start(tmp_path):
    rows = [decision(f"H{i}", "1.2.2022") for i in range(5000)] + [decision("HX", "1.2.2022", "2.2.2022", paatos="myönteinen")]
    path = write_export(tmp_path, "maksatuspaatokset_2022-06-30.csv", DECISION_HEADER, rows, encoding="cp1252")
    result = read_export(path)
    assert result.encoding == "cp1252"
    assert result.frame["paatos"].to_list()[-1] == "myönteinen"


def test_header_case_and_spaces_are_normalised(tmp_path):
    header = " Hakemus_ID ;TUKIMUOTO;Yksikko ;saapunut;paatetty;paatos;haettu_eur;maksettu_eur;asiakastunnus;taydennys_pv"
    path = write_export(tmp_path, "maksatuspaatokset_2022-06-30.csv", header, [decision("H1", "1.2.2022")])
    assert read_export(path).frame.columns[:4] == ["line", "hakemus_id", "tukimuoto", "yksikko"]


def test_quoted_fields_with_separator_and_newline(tmp_path):
    header = "vastaus_id;kysely;palvelu;vastattu;arvosana;vapaa_teksti"
    rows = ['V1;kohtaaminen;maksatus;1.2.2022;5;"hyvä; nopea\nkiitos"', "V2;kohtaaminen;maksatus;1.2.2022;4;"]
    path = write_export(tmp_path, "asiakaspalaute_2022-06-30.csv", header, rows)
    frame = read_export(path).frame
    assert frame["vapaa_teksti"].to_list()[0].startswith("hyvä; nopea")
    assert frame["line"].to_list() == [2, 4]  # the physical line each record starts on


def test_xlsx_and_parquet(tmp_path):
    typed = pl.DataFrame(
        {"hakemus_id": ["H1"], "saapunut": [dt.date(2022, 1, 3)], "haettu_eur": [1234.5], "taydennys_pv": [2]}
    )
    typed.write_excel(tmp_path / "maksatuspaatokset_2022-06-30.xlsx")
    typed.write_parquet(tmp_path / "maksatuspaatokset_2022-07-30.parquet")
    for name in ("maksatuspaatokset_2022-06-30.xlsx", "maksatuspaatokset_2022-07-30.parquet"):
        frame = read_export(tmp_path / name).frame
        parsed = frame.select(
            parsing.parse_date("saapunut").alias("d"),
            parsing.parse_decimal("haettu_eur").alias("eur"),
            parsing.parse_integer("taydennys_pv").alias("days"),
        )
        assert parsed.row(0) == (dt.date(2022, 1, 3), 1234.5, 2), name


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "empty file"),
        (b"\x00\x01\x02binary\x00\xff" * 50, "binary"),
        (b"\n\n", "no header"),
    ],
)
def test_unreadable_files_say_why(tmp_path, content, reason):
    path = tmp_path / "maksatuspaatokset_2022-06-30.csv"
    path.write_bytes(content)
    with pytest.raises(UnreadableFile, match=reason):
        read_export(path)


def test_unsupported_extension(tmp_path):
    path = tmp_path / "maksatuspaatokset_2022-06-30.pdf"
    path.write_bytes(b"%PDF")
    with pytest.raises(UnreadableFile, match="unsupported file type"):
        read_export(path)
