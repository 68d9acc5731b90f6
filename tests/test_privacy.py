"""Pseudonyms, masking and the key's origin."""

import hashlib
import hmac

import polars as pl
import pytest

from keha_maksatus import privacy


def test_pseudonym_is_hmac_sha256_of_normalised_id():
    frame = pl.DataFrame({"asiakastunnus": ["131052-308T", "0737546-2", "131052-308T"]})
    out = privacy.pseudonymise_column(frame, "asiakastunnus", b"k")
    expected = hmac.new(b"k", b"131052-308T", hashlib.sha256).hexdigest()
    assert out["asiakastunnus"].to_list()[0] == expected == out["asiakastunnus"].to_list()[2]
    assert out["asiakastunnus"].to_list()[1] != expected
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
