"""Pseudonyms, masking, personal data in code columns and messages, and the key's origin."""

import datetime as dt
import hashlib
import hmac
import re
import shutil
import tempfile
from pathlib import Path

import duckdb
import polars as pl
import pytest
from hypothesis import assume, given, settings, strategies as st

from keha_maksatus import warehouse
from keha_maksatus.config import load_settings
from keha_maksatus.ingest import privacy
from keha_maksatus.ingest.readers import UnreadableFile, read_export
from keha_maksatus.ingest.schemas import DECISIONS, FEEDBACK
from keha_maksatus.ingest.store import ingest_landing
from keha_maksatus.ingest.validation import validate_export

from conftest import DECISION_HEADER, FEEDBACK_HEADER, decision, response, write_export
from test_masking_properties import ANY_PERSONAL_DATUM


@pytest.mark.parametrize("key", [b"k", b"a much longer secret key " * 5])
def test_sql_pseudonym_is_hmac_sha256_of_normalised_id(key):
    ids = ["131052-308T", " 0737546-2", "131052-308t"]
    expression, params = privacy.pseudonym_sql("asiakastunnus", key)
    con = duckdb.connect()
    try:
        con.register("ids", pl.DataFrame({"asiakastunnus": ids}))
        out = [r[0] for r in con.execute(f"SELECT {expression} FROM ids", params).fetchall()]
    finally:
        con.close()
    expected = hmac.new(key, b"131052-308T", hashlib.sha256).hexdigest()
    assert out[0] == expected == out[2] == privacy.pseudonym(key, ids[0])
    assert out[1] == hmac.new(key, b"0737546-2", hashlib.sha256).hexdigest()
    assert privacy.pseudonym(b"other", "131052-308T") != expected


def test_free_text_masking():
    text = "Hetu 131052-308T, Y 0737546-2, posti matti.m@example.fi, puh 040 123 4567 tai +358 40 1234567. Summa 1200 e."
    masked = privacy.mask_string(text)
    for secret in ("131052-308T", "0737546-2", "matti.m@example.fi", "040 123 4567", "+358 40 1234567"):
        assert secret not in masked
    assert "[hetu]" in masked and "[y-tunnus]" in masked and "[email]" in masked and "[puhelin]" in masked
    assert "Summa 1200 e." in masked


@pytest.mark.parametrize("text, masked", [
    # identity codes glued to letters, digits or _, every century sign of the 2023 reform
    ("abc131052-308Tdef", "abc[hetu]def"),
    ("x_131052-308T_y", "x_[hetu]_y"),
    ("1310523-308T", "1[hetu]"),
    ("010105B2349 020306C345C 150790Y4568 311299U789N 010180+1232 240312f111k", "[hetu] [hetu] [hetu] [hetu] [hetu] [hetu]"),
    ("ABCDEF131052-308T131052-308T", "ABCDEF[hetu][hetu]"),
    # business IDs, also glued
    ("Y-tunnus:0737546-2kiitos", "Y-tunnus:[y-tunnus]kiitos"),
    ("yritys_2345678-0_", "yritys_[y-tunnus]_"),
    # e-mail addresses
    ("matti.m@example.fi, m_m+x@sub.example.com.", "[email], [email]."),
    ("hetu 131052-308T@x.fi", "hetu [email]"),
    # phone numbers in the usual Finnish and international forms
    ("040 123 4567", "[puhelin]"),
    ("puh 040-1234567.", "puh [puhelin]."),
    ("0401234567", "[puhelin]"),
    ("Vaihde (09) 123 4567 arkisin", "Vaihde [puhelin] arkisin"),
    ("09 1234 567", "[puhelin]"),
    ("+358 40 123 4567", "[puhelin]"),
    ("+358 (0)40 123 4567", "[puhelin]"),
    ("tel:+358401234567", "tel:[puhelin]"),
    ("00358 40 123 4567", "[puhelin]"),
    ("0035840-1234567", "[puhelin]"),
    ("040/123 4567 tai 040.123.4567", "[puhelin] tai [puhelin]"),
    ("+46 70 123 45 67.", "[puhelin]."),
    ("040 12 34 567, 070-123 45 67 (puh.0501234567)", "[puhelin], [puhelin] (puh.[puhelin])"),
    ("rivi\n040 123 4567\nx", "rivi\n[puhelin]\nx"),
    # glued after a letter, `-`, `/` or `_`: grouped forms and whole mobile numbers
    ("koti-040 123 4567", "koti-[puhelin]"), ("Liisa040 123 4567", "Liisa[puhelin]"),
    ("työ/040 123 4567", "työ/[puhelin]"), ("puh0401234567.", "puh[puhelin]."), ("x_050-1234567", "x_[puhelin]"),
    # IBANs, Finnish and foreign, whole or in groups of four
    ("Tilini FI21 1234 5600 0007 85, kiitos", "Tilini [iban], kiitos"),
    ("FI2112345600000785", "[iban]"),
    ("tili:fi21 1234 5600 0007 85", "tili:[iban]"),
    ("SE45 5000 0000 0583 9825 7466 / DE89 3704 0044 0532 0130 00", "[iban] / [iban]"),
    ("GB29 NWBK 6016 1331 9268 19 ja NO9386011117947", "[iban] ja [iban]"),
])
def test_every_form_of_personal_data_is_masked(text, masked):
    assert privacy.mask_string(text) == masked
    assert pl.select(privacy.holds_personal_data(pl.lit(text))).item()


@pytest.mark.parametrize("text", [
    "1 234,50", "Summa 2 010 000,00 e tai 2 010 000.00 e", "-50,00", "0,50 e", "1200 e",
    "1.3.2022", "01.03.2022", "01.03.2022 12:00", "2022-03-01", "2022-03-01 00:00:00", "1.1.2022-31.12.2022",
    "01.01.2000-01.01.2000", "klo 9.30-16", "09.30-10.30", "01/2022-03/2022", "12/22",
    "H00000123", "H09999999", "V00000001", "2022-000123", "MAKS-2022-0001234", "MAKS-2022-0101234", "2022-0123456",
    "VN/0123456/2022", "HBAD-001", "TE-UUS", "ELY-KES", "00100 Helsinki", "02100 Espoo", "ESR 2022", "EAKR12",
    "ES2022000123", "palkkatuki", "kohtaaminen", "fi",
])
def test_amounts_dates_times_ids_and_codes_are_not_personal_data(text):
    assert privacy.mask_string(text) == text
    assert not pl.select(privacy.holds_personal_data(pl.lit(text))).item()


@pytest.mark.parametrize("code", [
    "0123456", "0012345678", "00461100000", "20220101-0001", "H00000123", "H02000000", "H09999999", "2022-000123",
    "MAKS-2022-0101234", "2022-0123456", "VN/0123456/2022", "TE-UUS", "ELY-KES", "ESR 2022", "palkkatuki", "fi",
])
def test_numeric_ids_are_no_personal_data_in_a_code_column(code):
    assert not pl.select(privacy.code_holds_personal_data(pl.lit(code))).item()


@pytest.mark.parametrize("code", [
    "TE-UUS/0401234567", "TE-UUS 040-123 4567", "0401234567", "091234567", "+358401234567", "0035840 123 4567",
    "x131052-308T", "0737546-2", "matti@example.fi", "FI2112345600000785",
])
def test_personal_data_in_a_code_column_is_found_even_glued(code):
    assert pl.select(privacy.code_holds_personal_data(pl.lit(code))).item()


# ---- personal data in code and id columns, rejections and messages ------------------------

EXTRACT = dt.date(2022, 6, 30)
PERSONAL_DATA = {
    "hetu": ("131052-308T", "[hetu]"), "glued hetu": ("TE-010105B2349", "TE-[hetu]"),
    "business id": ("0737546-2", "[y-tunnus]"), "e-mail": ("matti.m@example.fi", "[email]"),
    "phone": ("040 123 4567", "[puhelin]"), "international phone": ("+358 (0)40 123 4567", "[puhelin]"),
    "iban": ("FI21 1234 5600 0007 85", "[iban]"),
}
DECISION_CODES = ["hakemus_id", "tukimuoto", "yksikko"]
FEEDBACK_CODES = ["vastaus_id", "kysely", "palvelu", "tukimuoto", "yksikko", "hakemus_id", "kieli"]
REAL_IDS = ["2022-000123", "MAKS-2022-0001234", "MAKS-2022-0101234", "2022-0123456", "UUDELY/0123456/2022", "H00000123", "H09999999"]


def validate_rows(folder: Path, header: str, rows: list[str], kind):
    path = write_export(folder, f"{kind.prefix}2022-06-30.csv", header, rows)
    return validate_export(read_export(path).frame, kind, EXTRACT)


def _decision_with(column: str, value: str, row_id: str) -> str:
    cells = dict(zip(DECISION_HEADER.split(";"), decision(row_id, "1.2.2022", "15.2.2022").split(";")))
    return ";".join(value if name == column else cell for name, cell in cells.items())


def _response_with(column: str, value: str, row_id: str) -> str:
    cells = dict(zip(FEEDBACK_HEADER.split(";"), response(row_id, "1.3.2022 10:00", "4").split(";")))
    return ";".join(value if name == column else cell for name, cell in cells.items())


@pytest.mark.parametrize("kind, header, columns, row_with", [
    (DECISIONS, DECISION_HEADER, DECISION_CODES, _decision_with),
    (FEEDBACK, FEEDBACK_HEADER, FEEDBACK_CODES, _response_with),
])
def test_personal_data_in_a_code_or_id_column_is_rejected_masked(tmp_path, kind, header, columns, row_with):
    """Every kind of personal data in every code and id column: the row is rejected with
    rule personal_data alone, the raw value masked; real id forms stay valid."""
    rows, expected = [], set()
    for column in columns:
        for value, masked in PERSONAL_DATA.values():
            rows.append(row_with(column, value, f"X{len(rows)}"))
            expected.add((len(rows) + 1, column, "personal_data", masked))
    for real_id in REAL_IDS:
        rows.append(row_with(kind.id_column, real_id, real_id))
    result = validate_rows(tmp_path, header, rows, kind)
    assert {tuple(r) for r in result.rejections.iter_rows()} == expected
    assert result.valid[kind.id_column].to_list() == REAL_IDS
    held = result.valid.select(pl.any_horizontal(privacy.holds_personal_data(pl.col(c)) for c in columns).fill_null(False).any())
    assert not held.item()


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(FEEDBACK_CODES), ANY_PERSONAL_DATUM, st.sampled_from(["", " ", "puh ", "tieto: "]))
def test_generated_personal_data_in_a_code_column_never_stays_valid(column, datum, prefix):
    # A number as one unbroken run of digits reads like a zero-padded id: in a code or id
    # column it is taken for a phone number only as 8 to 11 digits after an area code 02-09
    # (CODE_PERSONAL_DATA_PATTERN), not as `0910000`, `01310000` or `00461100000`.
    assume(not re.fullmatch(r"[0-9]+", datum) or re.fullmatch(r"0[2-9][0-9]{6,9}", datum))
    with tempfile.TemporaryDirectory() as folder:
        result = validate_rows(Path(folder), FEEDBACK_HEADER, [_response_with(column, prefix + datum, "V1")], FEEDBACK)
    assert result.valid.is_empty()
    assert result.rejections.select("column", "rule").rows() == [(column, "personal_data")]
    assert result.rejections["raw_value"].item() == privacy.mask_string(prefix + datum)


def test_personal_data_in_cells_rejected_for_other_rules_is_masked(tmp_path):
    rows = [
        decision("H1", "131052-308T"),  # a date
        decision("H2", "1.2.2022", haettu="FI21 1234 5600 0007 85"),  # an amount
        decision("H3", "1.2.2022", "2.2.2022", paatos="matti@example.fi"),  # an outcome
        decision("H4", "1.2.2022", asiakas="131052-308A"),  # a customer id with a wrong checksum
        decision("H5", "1.2.2022", taydennys="0737546-2"),  # an integer
        decision("H6", "1.2.2022") + ";soita 040 123 4567;010105B2349",  # surplus fields
        decision("H7", "1.2.2022"),
    ]
    result = validate_rows(tmp_path, DECISION_HEADER, rows, DECISIONS)
    assert sorted(result.rejections.select("line", "raw_value").rows()) == [
        (2, "[hetu]"), (3, "[iban]"), (4, "[email]"), (5, "[masked, 11 characters]"), (6, "[y-tunnus]"), (7, "soita [puhelin];[hetu]"),
    ]


def test_missing_columns_message_masks_the_found_column_names(tmp_path):
    header = DECISION_HEADER.replace("asiakastunnus", "131052-308T") + ";yhteys matti@example.fi;" + "x" * 200
    path = write_export(tmp_path, "maksatuspaatokset_2022-06-30.csv", header, [decision("H1", "1.2.2022") + ";;"])
    with pytest.raises(UnreadableFile) as raised:
        validate_export(read_export(path).frame, DECISIONS, EXTRACT)
    message = str(raised.value)
    assert message.startswith("missing required columns: asiakastunnus (found: hakemus_id, ")
    assert "[hetu]" in message and "yhteys [email]" in message and "131052" not in message and "matti" not in message
    assert "x" * 40 not in message and len(message) < 400  # a long name is cut


# ---- the key -------------------------------------------------------------------------------


def test_key_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(privacy.KEY_ENV, "secret")
    assert privacy.resolve_key(tmp_path) == (b"secret", False)


def test_demo_key_only_for_bundled_sample(monkeypatch, tmp_path):
    monkeypatch.delenv(privacy.KEY_ENV, raising=False)
    assert privacy.resolve_key(privacy.SAMPLE_DIR) == (privacy.DEMO_KEY, True)
    with pytest.raises(privacy.MissingKeyError, match=privacy.KEY_ENV):
        privacy.resolve_key(tmp_path)  # nothing of the sample there


def test_the_manifest_lists_exactly_the_bundled_sample_files():
    lines = privacy.SAMPLE_MANIFEST.read_text(encoding="utf-8").splitlines()
    listed = {name: digest for digest, name in (line.split("  ", 1) for line in lines)}
    on_disk = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in privacy.SAMPLE_DIR.iterdir()}
    assert listed == on_disk and privacy.sample_hashes() == set(on_disk.values())


def _sample_copy(tmp_path: Path) -> Path:
    landing = tmp_path / "landing"
    shutil.copytree(privacy.SAMPLE_DIR, landing)
    return landing


def test_the_sample_copied_unchanged_anywhere_runs_on_the_demo_key(monkeypatch, tmp_path):
    monkeypatch.delenv(privacy.KEY_ENV, raising=False)
    landing = _sample_copy(tmp_path)
    (landing / "maksatuspaatokset_2021-06-30.csv").rename(landing / "maksatuspaatokset_2021-06-30_b.csv")  # by content
    (landing / "notes.txt").write_text("not an export: never pseudonymised")
    (tmp_path / "elsewhere.csv").write_text("hakemus_id\n")
    (landing / "maksatuspaatokset_2023-01-01.csv").symlink_to(tmp_path / "elsewhere.csv")  # skipped, never read
    (landing / "asiakaspalaute_2023-01-01.csv.part").write_text("still being written")  # not read yet
    assert privacy.resolve_key(landing) == (privacy.DEMO_KEY, True)


@pytest.mark.parametrize("change", ["edited", "truncated", "added", "added in upper case"])
def test_any_other_export_file_needs_the_key(monkeypatch, tmp_path, change):
    monkeypatch.delenv(privacy.KEY_ENV, raising=False)
    landing = _sample_copy(tmp_path)
    other = landing / "asiakaspalaute_2022-10-31.csv"
    if change == "edited":
        other.write_bytes(other.read_bytes().replace(b"\r\n", b"\n"))
    elif change == "truncated":
        other.write_bytes(other.read_bytes()[:-1])
    else:
        name = "maksatuspaatokset_2023-01-01.csv" if change == "added" else "MAKSATUSPAATOKSET_2023-01-01.csv"
        other = write_export(landing, name, DECISION_HEADER, [decision("H1", "1.2.2022")])
    with pytest.raises(privacy.MissingKeyError) as raised:
        privacy.resolve_key(landing)
    assert privacy.KEY_ENV in str(raised.value) and other.name in str(raised.value)
    monkeypatch.setenv(privacy.KEY_ENV, "secret")
    assert privacy.resolve_key(landing) == (b"secret", False)


def test_a_file_landing_after_the_demo_key_was_granted_is_not_stored_under_it(monkeypatch, tmp_path):
    monkeypatch.delenv(privacy.KEY_ENV, raising=False)
    landing = _sample_copy(tmp_path)
    assert privacy.resolve_key(landing) == (privacy.DEMO_KEY, True)
    late = write_export(landing, "maksatuspaatokset_2023-01-31.csv", DECISION_HEADER, [decision("LATE1", "1.2.2022")])
    con = warehouse.connect(tmp_path / "work")
    try:
        ingest_landing(con, landing, privacy.DEMO_KEY, load_settings())
        status, reason = con.execute("SELECT status, reason FROM quality.ingest_log WHERE file_name = ?", [late.name]).fetchall()[0]
        assert status == "unreadable" and privacy.KEY_ENV in reason
        assert con.execute("SELECT count(*) FROM core.decisions WHERE hakemus_id = 'LATE1'").fetchall()[0][0] == 0
        assert con.execute("SELECT count(*) FROM quality.ingest_log WHERE status = 'ingested'").fetchall()[0][0] == 6
    finally:
        con.close()


def test_a_file_name_in_the_key_message_is_masked(monkeypatch, tmp_path):
    monkeypatch.delenv(privacy.KEY_ENV, raising=False)
    write_export(tmp_path, "maksatuspaatokset_2022-06-30_131052-308T.csv", DECISION_HEADER, [decision("H1", "1.2.2022")])
    with pytest.raises(privacy.MissingKeyError) as raised:
        privacy.resolve_key(tmp_path)
    assert "maksatuspaatokset_2022-06-30_[hetu].csv" in str(raised.value) and "131052" not in str(raised.value)


def test_sample_manifest_written_and_read(tmp_path):
    folder = tmp_path / "sample"
    folder.mkdir()
    (folder / "a.csv").write_bytes(b"a")
    (folder / "b.csv").write_bytes(b"b")
    manifest = privacy.write_sample_manifest(folder, tmp_path / "sample.sha256")
    digests = [hashlib.sha256(b"a").hexdigest(), hashlib.sha256(b"b").hexdigest()]
    assert manifest.read_text().splitlines() == [f"{digests[0]}  a.csv", f"{digests[1]}  b.csv"]
    assert privacy.sample_hashes(manifest) == set(digests)
    assert privacy.sample_hashes(tmp_path / "missing.sha256") == set()


@given(st.lists(st.one_of(st.none(), st.text(max_size=30), st.sampled_from([
    "soita 040 123 4567", "hetu 131052-308T kiitos", "matti@example.fi", "Y 0737546-2", "ei numeroita", "",
])), max_size=40))
def test_column_masking_equals_masking_every_cell(texts):
    frame = pl.DataFrame({"vapaa_teksti": texts, "n": list(range(len(texts)))}, schema={"vapaa_teksti": pl.String, "n": pl.Int64})
    expected = frame.with_columns(privacy.mask_free_text(pl.col("vapaa_teksti")))
    assert privacy.mask_column(frame, "vapaa_teksti").equals(expected)


def test_customer_keys_hash_each_customer_once_and_keep_keys_across_runs(tmp_path):
    def pseudonymised(ids):
        frame = privacy.pseudonymise(pl.DataFrame({"n": range(len(ids)), "asiakastunnus": ids}), "asiakastunnus", b"k")
        assert frame.columns == ["n", "asiakas_hash"]  # in place, no clear id left
        assert frame["asiakas_hash"].to_list() == [privacy.pseudonym(b"k", c) for c in ids]
        return frame

    con = warehouse.connect(tmp_path / "work")
    try:
        first_ids, second_ids = ["131052-308T", "0737546-2", "131052-308T"], ["0737546-2", "010101-123N"]
        con.register("first", pseudonymised(first_ids))
        con.register("second", pseudonymised(second_ids))
        run = privacy.CustomerKeys(con)
        run.add("first", "asiakas_hash")
        run.add("second", "asiakas_hash")
        keys = dict(con.execute(f"SELECT asiakas_hash, asiakas_id FROM {run.table}").fetchall())
        run.drop()
        customers = dict(con.execute("SELECT asiakas_id, asiakas_hash FROM core.customers").fetchall())
        assert len(customers) == 3 and sorted(keys.values()) == [1, 2, 3]  # each customer once
        assert {customers[k] for k in keys.values()} == {privacy.pseudonym(b"k", c) for c in first_ids + second_ids}

        next_run = privacy.CustomerKeys(con)
        con.register("third", pseudonymised(["010101-123N", "311299-999E"]))
        next_run.add("third", "asiakas_hash")
        later = dict(con.execute(f"SELECT asiakas_hash, asiakas_id FROM {next_run.table}").fetchall())
        assert later[privacy.pseudonym(b"k", "010101-123N")] == keys[privacy.pseudonym(b"k", "010101-123N")]
        assert later[privacy.pseudonym(b"k", "311299-999E")] == 4
        next_run.drop()
        assert not con.execute(f"SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE 'customer_keys%'").fetchall()[0][0]
    finally:
        con.close()
