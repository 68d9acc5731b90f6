"""Any mix of line ends (LF, CR LF, a bare CR) and blank lines anywhere gives the rows of
the clean file: the same valid rows, the same rejections, the same rows read, each at
the physical line an editor shows."""

import datetime as dt
import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from keha_maksatus.ingest.readers import read_export
from keha_maksatus.ingest.schemas import DECISIONS, FEEDBACK
from keha_maksatus.ingest.validation import validate_export

from conftest import DECISION_HEADER, FEEDBACK_HEADER

EXTRACT = dt.date(2022, 6, 30)
LINE_ENDS = st.sampled_from(["\n", "\r\n", "\r"])
BLANK = st.sampled_from(["", " ", "\t", "  \t ", " " * 40, "\u00a0", " \x0c", "\x0b\t"])  # no-break space, form feed, vertical tab

DECISION_CELLS = [
    st.sampled_from(["H1", "H2", "H3", "H4", "H5", "H6", "", "H1"]),
    st.sampled_from(["palkkatuki", "esr", "uusi", ""]),
    st.sampled_from(["TE-UUS", "ELY-KES", ""]),
    st.sampled_from(["1.2.2022", "2022-02-01", "31.2.2022", "", "x", "2022-02-01 00:00:00"]),
    st.sampled_from(["", "15.2.2022", "1.1.2030", "15.2.2022 10:00"]),
    st.sampled_from(["", "myönteinen", "hylätty"]),
    st.sampled_from(["1 234,50", "100.00", "-5", "abc"]),
    st.sampled_from(["", "10,00"]),
    st.sampled_from(["131052-308T", "0737546-2", "131052-308A"]),
    st.sampled_from(["", "3", "kolme"]),
]
FEEDBACK_CELLS = [
    st.sampled_from(["V1", "V2", "V3", "V4", "V5", "V6", "V1"]),
    st.sampled_from(["kohtaaminen", "kampanja", "x"]),
    st.sampled_from(["maksatus", "muu"]),
    st.sampled_from(["1.3.2022 10:00", "2022-03-01T09:15:00", "1.3.2022", "huomenna"]),
    st.sampled_from(["5", "4", "EOS", "", "6", "4,5"]),
    st.just(""), st.just(""), st.just(""),
    st.sampled_from(["fi", "sv", ""]),
    # free text: plain, quoted with the separator, quoted with line breaks (blank lines too) inside
    st.sampled_from(["", "kiitos", '"nopea; hyvä"', '"rivi\ntoinen"', '"a\r\n\r\n  \r\nb"', '"x\ry"', '"sanoi ""hyvä"""']),
]


@st.composite
def export(draw, header: str, cells: list) -> list[str]:
    """The records of a clean file: the header and 1-8 rows."""
    rows = draw(st.lists(st.tuples(*cells).map(";".join), min_size=1, max_size=8))
    return [header, *rows]


def line_breaks(text: str) -> int:
    return len(re.findall(r"\r\n|\r|\n", text))


@st.composite
def messy(draw, records: list[str]) -> tuple[str, list[int]]:
    """The records written with random line ends and blank lines inserted anywhere (also
    before the header and at the end, the last line end perhaps missing); the physical
    line each record starts on."""
    text = ""

    def blank_line() -> str:
        blank, end = draw(BLANK), draw(LINE_ENDS)
        if not blank and text.endswith("\r") and end == "\n":
            end = "\r\n"  # CR then LF would be one line end, not an empty line
        return blank + end

    lines = []
    for index, record in enumerate(records):
        if index <= 1 or draw(st.booleans()):
            for _ in range(draw(st.integers(0, 2))):
                text += blank_line()
        lines.append(line_breaks(text) + 1)
        text += record
        if index < len(records) - 1 or draw(st.booleans()):
            text += draw(LINE_ENDS)
    for _ in range(draw(st.integers(0, 3))):  # blank lines at the end
        text += blank_line() if text.endswith(("\n", "\r")) else draw(LINE_ENDS) + draw(BLANK)
    return text, lines


def read_and_validate(path: Path, kind):
    return validate_export(read_export(path).frame, kind, EXTRACT)


def check_same_rows(tmp_path: Path, records: list[str], mess: tuple[str, list[int]], kind, encoding: str) -> None:
    clean_path, messy_path = tmp_path / f"{kind.prefix}clean.csv", tmp_path / f"{kind.prefix}messy.csv"
    clean_path.write_bytes(("\n".join(records) + "\n").encode(encoding))
    text, lines = mess
    messy_path.write_bytes(text.encode(encoding))
    clean, result = read_and_validate(clean_path, kind), read_and_validate(messy_path, kind)

    assert result.rows_read == clean.rows_read == len(records) - 1
    # Row k of the clean file sits on line lines[k] of the messy one (the header is k = 0).
    clean_line = {clean_line: lines[k] for k, clean_line in enumerate(_clean_lines(records))}
    assert result.valid.drop("line").to_dicts() == clean.valid.drop("line").to_dicts()
    assert result.valid["line"].to_list() == [clean_line[line] for line in clean.valid["line"]]
    moved = clean.rejections.with_columns(clean.rejections["line"].replace_strict(clean_line))
    order = ["line", "column", "rule"]
    assert result.rejections.sort(order).to_dicts() == moved.sort(order).to_dicts()


def _clean_lines(records: list[str]) -> list[int]:
    """The line each record starts on in the clean file (LF between records; a quoted
    field's own line breaks count as lines)."""
    lines, line = [], 1
    for record in records:
        lines.append(line)
        line += 1 + line_breaks(record)
    return lines


SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(st.data(), st.sampled_from(["utf-8", "utf-8-sig", "cp1252"]))
def test_decisions_with_any_line_ends_and_blank_lines(tmp_path, data, encoding):
    records = data.draw(export(DECISION_HEADER, DECISION_CELLS))
    check_same_rows(tmp_path, records, data.draw(messy(records)), DECISIONS, encoding)


@SETTINGS
@given(st.data())
def test_feedback_with_quoted_line_breaks_any_line_ends_and_blank_lines(tmp_path, data):
    records = data.draw(export(FEEDBACK_HEADER, FEEDBACK_CELLS))
    check_same_rows(tmp_path, records, data.draw(messy(records)), FEEDBACK, "utf-8")


def test_a_one_row_file_with_a_trailing_blank_line(tmp_path):
    """The example from the issue: one good row, then a lone CR LF."""
    row = "H1;palkkatuki;TE-UUS;1.2.2022;15.2.2022;myönteinen;1000,00;;131052-308T;"
    path = tmp_path / "maksatuspaatokset_2022-06-30.csv"
    path.write_bytes(f"{DECISION_HEADER}\r\n{row}\r\n\r\n".encode())
    result = read_and_validate(path, DECISIONS)
    assert (result.rows_read, result.rows_valid, result.rows_rejected) == (1, 1, 0)


def test_an_old_mac_file_with_cr_only(tmp_path):
    rows = [f"H{i};palkkatuki;TE-UUS;1.2.2022;;;1000,00;;131052-308T;" for i in range(1, 4)]
    path = tmp_path / "maksatuspaatokset_2022-06-30.csv"
    path.write_bytes("\r".join([DECISION_HEADER, *rows, ""]).encode("cp1252"))
    result = read_and_validate(path, DECISIONS)
    assert (result.rows_read, result.rows_valid) == (3, 3)
    assert result.valid["line"].to_list() == [2, 3, 4]


def test_lines_of_unicode_spaces_alone_are_no_rows(tmp_path):
    row = "H1;palkkatuki;TE-UUS;1.2.2022;15.2.2022;myönteinen;1000,00;;131052-308T;"
    blanks = ["\u00a0", "\u3000", " \u202f ", "\u2003\t", "\x0c"]
    path = tmp_path / "maksatuspaatokset_2022-06-30.csv"
    path.write_bytes("\n".join([DECISION_HEADER, row, *blanks, row.replace("H1", "H2"), ""]).encode())
    result = read_and_validate(path, DECISIONS)
    assert (result.rows_read, result.rows_valid, result.rows_rejected) == (2, 2, 0)
    assert result.valid["line"].to_list() == [2, 8]
