"""Pseudonyms, masking and the key's origin."""

import hashlib
import hmac

import duckdb
import polars as pl
import pytest
from hypothesis import given, strategies as st

from keha_maksatus import privacy, warehouse


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


def test_key_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(privacy.KEY_ENV, "secret")
    assert privacy.resolve_key(tmp_path) == (b"secret", False)


def test_demo_key_only_for_bundled_sample(monkeypatch, tmp_path):
    monkeypatch.delenv(privacy.KEY_ENV, raising=False)
    assert privacy.resolve_key(privacy.SAMPLE_DIR) == (privacy.DEMO_KEY, True)
    with pytest.raises(privacy.MissingKeyError, match=privacy.KEY_ENV):
        privacy.resolve_key(tmp_path)


@given(st.lists(st.one_of(st.none(), st.text(max_size=30), st.sampled_from([
    "soita 040 123 4567", "hetu 131052-308T kiitos", "matti@example.fi", "Y 0737546-2", "ei numeroita", "",
])), max_size=40))
def test_column_masking_equals_masking_every_cell(texts):
    frame = pl.DataFrame({"vapaa_teksti": texts, "n": list(range(len(texts)))}, schema={"vapaa_teksti": pl.String, "n": pl.Int64})
    expected = frame.with_columns(privacy.mask_free_text(pl.col("vapaa_teksti")))
    assert privacy.mask_column(frame, "vapaa_teksti").equals(expected)


def test_customer_keys_hash_each_customer_once_and_keep_keys_across_runs(tmp_path):
    con = warehouse.connect(tmp_path / "work")
    try:
        con.register("first", pl.DataFrame({"asiakastunnus": ["131052-308T", "0737546-2", "131052-308T"]}))
        con.register("second", pl.DataFrame({"asiakastunnus": ["0737546-2", "010101-123N"]}))
        run = privacy.CustomerKeys(con, b"k")
        run.add("first", "asiakastunnus")
        run.add("second", "asiakastunnus")
        keys = dict(con.execute(f"SELECT customer_id, asiakas_id FROM {run.table}").fetchall())
        run.drop()
        customers = dict(con.execute("SELECT asiakas_id, asiakas_hash FROM core.customers").fetchall())
        assert len(customers) == 3 and sorted(keys.values()) == [1, 2, 3]  # each customer once
        assert {c: customers[k] for c, k in keys.items()} == {c: privacy.pseudonym(b"k", c) for c in keys}

        next_run = privacy.CustomerKeys(con, b"k")
        con.register("third", pl.DataFrame({"asiakastunnus": ["010101-123N", "311299-999E"]}))
        next_run.add("third", "asiakastunnus")
        later = dict(con.execute(f"SELECT customer_id, asiakas_id FROM {next_run.table}").fetchall())
        assert later["010101-123N"] == keys["010101-123N"] and later["311299-999E"] == 4
        next_run.drop()
        assert not con.execute(f"SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE 'customer_keys%'").fetchall()[0][0]
    finally:
        con.close()
