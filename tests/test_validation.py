"""Row rules: every failure lands in the quarantine with file, line, column and rule."""

import datetime as dt

from keha_maksatus.ingest.readers import read_export
from keha_maksatus.ingest.schemas import DECISIONS, FEEDBACK
from keha_maksatus.ingest.validation import validate_export

from conftest import DECISION_HEADER, FEEDBACK_HEADER, HETU, YTUNNUS, decision, response, write_export

EXTRACT = dt.date(2022, 6, 30)


def validate(tmp_path, header, rows, kind, name="export_2022-06-30.csv"):
    path = write_export(tmp_path, name, header, rows)
    return validate_export(read_export(path).frame, kind, EXTRACT)


def rejected(result):
    return {(r["line"], r["column"], r["rule"]) for r in result.rejections.iter_rows(named=True)}


def test_each_decision_rule(tmp_path):
    rows = [
        decision("H1", "1.2.2022", "15.2.2022", asiakas=HETU),  # line 2: valid
        decision("H2", "1.2.2022", asiakas=YTUNNUS, taydennys="3"),  # line 3: valid, pending
        decision("H3", "31.2.2022"),  # 4: impossible date
        decision("H4", "1.2.2022", "1.1.2022"),  # 5: decided before received
        decision("H5", "1.2.2022", "1.7.2022"),  # 6: after the extract date
        decision("H6", "1.2.2022", "2.2.2022", paatos=""),  # 7: outcome missing
        decision("H7", "1.2.2022", paatos="kielteinen"),  # 8: outcome while pending
        decision("H8", "1.2.2022", haettu="-5"),  # 9: negative amount
        decision("H9", "1.2.2022", asiakas="131052-308A"),  # 10: checksum
        decision("H10", "1.2.2022", haettu="paljon"),  # 11: not a number
        decision("H11", "1.2.2022", "2.2.2022", paatos="hyväksytty"),  # 12: unknown outcome
        decision("", "1.2.2022"),  # 13: id missing
        decision("H12", "1.2.2022", taydennys="-1"),  # 14: negative supplement days
        decision("H13", "1.2.2022", tukimuoto="koulutus"),  # 15: unlisted instrument: kept
        decision("H14", "1.2.2022", "3.2.2022", paatos="Osittain Myönteinen"),  # 16: case-insensitive outcome
    ]
    result = validate(tmp_path, DECISION_HEADER, rows, DECISIONS)
    assert rejected(result) == {
        (4, "saapunut", "date_format"),
        (5, "paatetty", "paatetty_not_before_saapunut"),
        (6, "paatetty", "paatetty_not_after_extract_date"),
        (7, "paatos", "paatos_required_when_decided"),
        (8, "paatos", "paatos_empty_when_pending"),
        (9, "haettu_eur", "not_negative"),
        (10, "asiakastunnus", "checksum_hetu_or_ytunnus"),
        (11, "haettu_eur", "decimal_format"),
        (12, "paatos", "allowed_values"),
        (13, "hakemus_id", "required"),
        (14, "taydennys_pv", "not_negative"),
    }
    assert result.valid["hakemus_id"].to_list() == ["H1", "H2", "H13", "H14"]
    assert result.valid.filter(hakemus_id="H1")["taydennys_pv"].item() == 0  # empty = 0
    assert result.valid.filter(hakemus_id="H14")["paatos"].item() == "osittain myönteinen"
    assert result.rows_read == result.rows_valid + result.rows_rejected == 15


def test_raw_values_kept_and_personal_data_masked(tmp_path):
    rows = [decision("H1", "31.2.2022"), decision("H2", "1.2.2022", asiakas="131052-308A")]
    result = validate(tmp_path, DECISION_HEADER, rows, DECISIONS)
    values = dict(zip(result.rejections["column"], result.rejections["raw_value"]))
    assert values["saapunut"] == "31.2.2022"
    assert "308A" not in values["asiakastunnus"] and "masked" in values["asiakastunnus"]


def test_duplicate_ids_within_a_file_are_all_rejected(tmp_path):
    rows = [decision("H1", "1.2.2022"), decision("H1", "2.2.2022"), decision("H2", "1.2.2022")]
    result = validate(tmp_path, DECISION_HEADER, rows, DECISIONS)
    assert rejected(result) == {(2, "hakemus_id", "duplicate_id_in_file"), (3, "hakemus_id", "duplicate_id_in_file")}
    assert result.valid["hakemus_id"].to_list() == ["H2"]


def test_feedback_scores_and_surveys(tmp_path):
    rows = [
        response("V1", "1.3.2022 10:00", "5"),  # 2 valid
        response("V2", "1.3.2022", "EOS"),  # 3 valid, no score
        response("V3", "1.3.2022", ""),  # 4 valid, no score
        response("V4", "1.3.2022", "0"),  # 5
        response("V5", "1.3.2022", "6"),  # 6
        response("V6", "1.3.2022", "4,5"),  # 7
        response("V7", "1.3.2022", "hyvä"),  # 8
        response("V8", "1.3.2022", "4", kysely="pikakysely"),  # 9
        response("V9", "", "4"),  # 10: when answered is required
    ]
    result = validate(tmp_path, FEEDBACK_HEADER, rows, FEEDBACK)
    assert rejected(result) == {
        (5, "arvosana", "score_1_to_5_or_EOS"),
        (6, "arvosana", "score_1_to_5_or_EOS"),
        (7, "arvosana", "score_1_to_5_or_EOS"),
        (8, "arvosana", "score_1_to_5_or_EOS"),
        (9, "kysely", "allowed_values"),
        (10, "vastattu", "required"),
    }
    assert result.valid["arvosana"].to_list() == [5, None, None]


def test_extra_columns_kept_out_and_optional_columns_may_be_missing(tmp_path):
    header = "vastaus_id;kysely;palvelu;vastattu;arvosana;oma_sarake"
    rows = ["V1;kohtaaminen;maksatus;1.3.2022;5;x"]
    result = validate(tmp_path, header, rows, FEEDBACK)
    assert result.extra_columns == ["oma_sarake"]
    assert result.rows_valid == 1 and "oma_sarake" not in result.valid.columns
