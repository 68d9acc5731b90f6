"""The report's "Muutokset edelliseen raporttiin": closed periods whose value changed since
the previous publish, by how much and why, on real small files published twice."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from keha_maksatus.config import PROCESSING_TIME, SATISFACTION
from keha_maksatus.outputs import finnish as fi
from keha_maksatus.outputs.disclosure import SUPPRESSED_FI, history_for_people
from keha_maksatus.outputs.publish import output_folders
from keha_maksatus.outputs.report import CHANGES_HEADING, NO_CHANGES_FI, Heading, Paragraph, Table, read_report, write_report

from conftest import DECISION_HEADER, FEEDBACK_HEADER, decision, response, write_export
from test_history import build_and_publish

CORRECTION = "maksatuspaatokset_2022-07-15.csv"


def decisions_of_june(landing: Path) -> None:
    """1-6/2022: A1 10 days, A2 30 days, A3 pending; five scored responses."""
    write_export(landing, "maksatuspaatokset_2022-06-30.csv", DECISION_HEADER, [
        decision("A1", "1.2.2022", "11.2.2022"),
        decision("A2", "1.3.2022", "31.3.2022", tukimuoto="esr", yksikko="ELY-KES"),
        decision("A3", "1.5.2022"),
    ])
    write_export(landing, "asiakaspalaute_2022-06-30.csv", FEEDBACK_HEADER, [
        response(f"V{i}", f"{i + 2}.3.2022", score) for i, score in enumerate(["5", "4", "3", "2", "5"])
    ])


def published_on(published: Path, publication_no: int) -> str:
    con = duckdb.connect(str(published), read_only=True)
    try:
        at = con.execute("SELECT published_at FROM history.publication WHERE publication_no = ?", [publication_no]).fetchall()[0][0]
    finally:
        con.close()
    return fi.date(at.date())


def section(published: Path) -> list:
    """The blocks of the section, from its heading to the next heading of its level."""
    blocks = read_report(published)
    [start] = [i for i, b in enumerate(blocks) if isinstance(b, Heading) and b.text == CHANGES_HEADING]
    end = next((i for i in range(start + 1, len(blocks)) if isinstance(blocks[i], Heading) and blocks[i].level <= 2), len(blocks))
    return blocks[start + 1:end]


def report_texts(published: Path) -> str:
    """The written Markdown and HTML report, as people get them."""
    markdown, page = write_report(published, output_folders(published).report)
    return markdown.read_text(encoding="utf-8") + "\n" + page.read_text(encoding="utf-8")


def test_a_late_correction_of_a_closed_period_is_named_with_its_change_and_its_file(tmp_path):
    landing = tmp_path / "landing"
    decisions_of_june(landing)
    published = build_and_publish(landing, tmp_path)
    # A2 was decided on 11.3. (10 days), A3 on 21.6. (51 days): a closed period moves.
    write_export(landing, CORRECTION, DECISION_HEADER, [
        decision("A2", "1.3.2022", "11.3.2022", tukimuoto="esr", yksikko="ELY-KES"),
        decision("A3", "1.5.2022", "21.6.2022"),
    ])
    build_and_publish(landing, tmp_path)

    blocks = section(published)
    before, after = (10 + 30) / 2, (10 + 10 + 51) / 3
    sentences = [b.text for b in blocks if isinstance(b, Paragraph)]
    expected = (
        f"Käsittelyaika (pv), jakso 1-6/2022: raportoitu {published_on(published, 1)}: {fi.number(before, 1)} pv (n = 2), "
        f"nyt {fi.number(after, 1)} pv (n = 3); muutos {fi.signed(after - before, 1)} pv."
    )
    assert expected in sentences
    assert "20,0" in expected and "23,7" in expected and "+3,7" in expected
    # Only the closed period: 1-12/2022 moved too, but it is still running; satisfaction did not move.
    assert not any("1-12/2022" in s or "Asiakastyytyväisyys" in s for s in sentences)

    [parts] = [b for b in blocks if isinstance(b, Table)]
    rows = [dict(zip(parts.headers, row)) for row in parts.rows]
    assert {r["Jakso"] for r in rows} == {"1-6/2022"}
    assert {r["Poiminta"] for r in rows} == {CORRECTION}
    assert sum(int(r["Lukumäärä"]) for r in rows) == 2  # A2 and A3
    # The parts' contributions (shown to two decimals) add up to the change.
    shown = [float(r["Vaikutus"].removesuffix(" pv").replace("\u2212", "-").replace(",", ".")) for r in rows]
    assert abs(sum(shown) - (after - before)) <= 0.005 * len(shown)

    text = report_texts(published)
    assert CHANGES_HEADING in text and CORRECTION in text and f"raportoitu {published_on(published, 1)}: 20,0" in text


def test_an_unchanged_closed_period_says_so_in_one_sentence(tmp_path):
    landing = tmp_path / "landing"
    decisions_of_june(landing)
    published = build_and_publish(landing, tmp_path)
    build_and_publish(landing, tmp_path)  # nothing new
    assert [b.text for b in section(published)] == [NO_CHANGES_FI.format(date=published_on(published, 1))]

    # A July decision moves only the running 1-12/2022: still nothing to tell.
    write_export(landing, "maksatuspaatokset_2022-07-31.csv", DECISION_HEADER, [decision("A4", "1.7.2022", "20.7.2022")])
    build_and_publish(landing, tmp_path)
    assert [b.text for b in section(published)] == [NO_CHANGES_FI.format(date=published_on(published, 2))]
    assert "Suljettujen kausien luvut eivät ole muuttuneet edellisestä raportista" in report_texts(published)


def test_the_first_publish_has_no_section(tmp_path):
    landing = tmp_path / "landing"
    decisions_of_june(landing)
    published = build_and_publish(landing, tmp_path)
    assert not any(isinstance(b, Heading) and b.text == CHANGES_HEADING for b in read_report(published))


def hidden_in(text: str, value: float) -> bool:
    """Whether the value stands in the text in any form a report may write it (two or
    three decimals, rounded or cut, comma or point), not as part of a longer number."""
    forms = set()
    for digits in (2, 3):
        forms |= {f"{abs(value):.{digits}f}", f"{int(abs(value) * 10 ** digits) / 10 ** digits:.{digits}f}"}
    forms |= {f.replace(".", ",") for f in forms}
    return any(re.search(rf"(?<![\d.,]){re.escape(f)}", text) for f in forms)


def test_a_satisfaction_change_resting_on_under_five_responses_is_withheld(tmp_path):
    landing = tmp_path / "landing"
    write_export(landing, "maksatuspaatokset_2022-07-01.csv", DECISION_HEADER, [
        decision("A1", "1.2.2021", "11.2.2021"), decision("A2", "1.2.2022", "21.2.2022"),
    ])
    # 2021: six responses (shown), 1-6/2022: four (withheld).
    year_2021 = ["5", "5", "4", "4", "3", "3"]
    june_2022 = ["5", "4", "3", "1"]
    write_export(landing, "asiakaspalaute_2022-07-01.csv", FEEDBACK_HEADER, [
        response(f"S{i}", f"{i + 2}.3.2021", s) for i, s in enumerate(year_2021)
    ] + [response(f"T{i}", f"{i + 2}.3.2022", s) for i, s in enumerate(june_2022)])
    published = build_and_publish(landing, tmp_path)
    # One response of each year is corrected: 3 -> 1 in 2021, 1 -> 2 in 2022.
    write_export(landing, "asiakaspalaute_2022-07-15.csv", FEEDBACK_HEADER, [
        response("S5", "7.3.2021", "1"), response("T3", "5.3.2022", "2"),
    ])
    build_and_publish(landing, tmp_path)

    blocks = section(published)
    sentences = {b.text.split(":")[0]: b.text for b in blocks if isinstance(b, Paragraph) and "jakso" in b.text}
    assert set(sentences) == {f"Asiakastyytyväisyys (1–5), jakso {p}" for p in ("1-6/2021", "1-12/2021", "1-6/2022")}
    # 2021 rests on six responses: the values are shown; the part (one response) is not.
    before_2021, after_2021 = sum(map(int, year_2021)) / 6, (sum(map(int, year_2021)) - 2) / 6
    assert f"{fi.number(before_2021, 2)} (n = 6), nyt {fi.number(after_2021, 2)} (n = 6)" in sentences["Asiakastyytyväisyys (1–5), jakso 1-6/2021"]
    # 1-6/2022 rests on four: nothing of it is shown, neither the values nor the change.
    june = sentences["Asiakastyytyväisyys (1–5), jakso 1-6/2022"]
    assert june.count(SUPPRESSED_FI) == 3 and "(n = 4)" in june
    [parts] = [b for b in blocks if isinstance(b, Table)]
    assert all(row[-1] == SUPPRESSED_FI for row in parts.rows) and len(parts.rows) == 3
    assert {row[3] for row in parts.rows} == {"asiakaspalaute_2022-07-15.csv"}

    text = report_texts(published)
    before_2022, after_2022 = sum(map(int, june_2022)) / 4, (sum(map(int, june_2022)) + 1) / 4
    for value in (before_2022, after_2022, after_2022 - before_2022, after_2021 - before_2021):
        # The 2021 change is shown only as the difference of the two values (-0,33), never as a part.
        if value == after_2021 - before_2021:
            assert not re.search(r"(?<![\d.,])0,333", text)
        else:
            assert not hidden_in(text, value), value


# -- the rule itself, over generated history.changes rows -----------------------------------

part_rows = st.lists(
    st.tuples(
        st.sampled_from([SATISFACTION, PROCESSING_TIME]), st.sampled_from(["1-6/2022", "1-12/2022"]),
        st.sampled_from(["score_corrected", "new_responses", "newly_quarantined"]), st.integers(0, 9),
        st.one_of(st.none(), st.floats(-3, 3, allow_nan=False)),
    ),
    min_size=1, max_size=12,
)
period_counts = st.tuples(st.integers(0, 9), st.integers(0, 9),
                          st.one_of(st.none(), st.floats(1, 5)), st.one_of(st.none(), st.floats(1, 5)))


@settings(max_examples=300, deadline=None)
@given(part_rows, st.dictionaries(st.tuples(st.sampled_from([SATISFACTION, PROCESSING_TIME]),
                                            st.sampled_from(["1-6/2022", "1-12/2022"])), period_counts))
def test_history_for_people_withholds_every_satisfaction_figure_resting_on_under_five(parts, counts):
    rows = []
    for indicator, period, part, items, contribution in parts:
        n_from, n_to, value_from, value_to = counts.get((indicator, period), (6, 6, 4.0, 4.5))
        rows.append(dict(from_publication_no=1, to_publication_no=2, indicator=indicator, period_label=period, complete=True,
                         value_from=value_from, value_to=value_to, n_from=n_from, n_to=n_to, part=part, file_id=1,
                         file_name="f.csv", items=items, contribution=contribution))
    exact = pl.DataFrame(rows, schema_overrides={"value_from": pl.Float64, "value_to": pl.Float64, "contribution": pl.Float64})
    people = history_for_people({"history.changes": exact})["history.changes"]

    for before, after in zip(exact.iter_rows(named=True), people.iter_rows(named=True)):
        key = (before["indicator"], before["period_label"])
        group = [r for r in rows if (r["indicator"], r["period_label"]) == key]
        a, b = before["value_from"], before["value_to"]
        assert after["value_changed"] == ((a is None) != (b is None) if a is None or b is None else abs(b - a) > 1e-9)
        if before["indicator"] != SATISFACTION:
            assert (after["value_from"], after["value_to"], after["contribution"]) == (a, b, before["contribution"])
            continue
        assert after["value_from"] == (None if before["n_from"] < 5 else a)
        assert after["value_to"] == (None if before["n_to"] < 5 else b)
        few = min(before["n_from"], before["n_to"], *[r["items"] for r in group if r["part"] != "newly_quarantined"] or [0])
        assert after["contribution"] == (None if few < 5 else before["contribution"])
