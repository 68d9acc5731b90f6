"""The two export kinds: their columns, how each is parsed, and the pandera models
that check the typed rows. The one home for the data contract's row rules."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable, Optional

import pandera.polars as pa
import polars as pl

from keha_maksatus.ingest import parsing
from keha_maksatus.ingest.identifiers import customer_id_validity, hetu_birth_date_validity
from keha_maksatus.ingest.privacy import code_holds_personal_data

INSTRUMENTS = ("palkkatuki", "starttiraha", "kulukorvaus", "rekrytointituki", "esr", "eakr", "muu")
OUTCOMES = ("myönteinen", "kielteinen", "osittain myönteinen", "raukeaa")
SURVEYS = ("kohtaaminen", "jalkikysely", "kampanja")
LANGUAGES = ("fi", "sv", "en")
PAYMENT_SERVICE = "maksatus"


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    required: bool
    parse: Callable[[str], pl.Expr]
    parse_rule: Optional[str] = None  # the rejection rule when the text cannot be parsed
    meaningful_text: Callable[[str], pl.Expr] = parsing.clean_text
    default: object = None  # the value of an empty cell
    # A cheap parser of the usual form only (null for anything else); `parse` then reads
    # just the cells it left null. Must agree with `parse` wherever it gives a value.
    fast_parse: Optional[Callable[[str], pl.Expr]] = None


def _text(name: str, required: bool) -> ColumnSpec:
    return ColumnSpec(name, required, parsing.clean_text, fast_parse=parsing.fast_clean_text)


def _lower(name: str, required: bool) -> ColumnSpec:
    return ColumnSpec(name, required, parsing.lower_text, fast_parse=parsing.fast_lower_text)


def _upper(name: str, required: bool) -> ColumnSpec:
    return ColumnSpec(name, required, parsing.upper_text, fast_parse=parsing.fast_upper_text)


@dataclass(frozen=True)
class ExportKind:
    name: str  # 'decisions' or 'feedback'
    prefix: str  # file-name prefix in the landing folder
    id_column: str
    columns: tuple[ColumnSpec, ...]
    model: type

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def date_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.parse in (parsing.parse_date, parsing.parse_datetime)]

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required]


def _unique_in_file(data: pa.PolarsData, column: str) -> pl.LazyFrame:
    """Every row whose id occurs more than once in the file fails, the first included
    (the file contradicts itself). A count per id: faster than is_duplicated, far faster
    than Field(unique=True)."""
    ids = pl.col(column)
    return data.lazyframe.select(ids.is_null() | (pl.len().over(ids) == 1))


PERSONAL_DATA_RULE = "personal_data"


def _no_personal_data(data: pa.PolarsData) -> pl.LazyFrame:
    """A code or id holding an identity code, business ID, e-mail address, phone number
    or IBAN fails, so that it never reaches core.*."""
    return data.lazyframe.select((~code_holds_personal_data(pl.col(data.key))).fill_null(True))


class DecisionModel(pa.DataFrameModel):
    """A payment application in one extract, after parsing."""

    hakemus_id: str = pa.Field(nullable=False)
    tukimuoto: str = pa.Field(nullable=False)
    yksikko: str = pa.Field(nullable=False)
    saapunut: dt.date = pa.Field(nullable=False)
    paatetty: dt.date = pa.Field(nullable=True)
    paatos: str = pa.Field(nullable=True, isin=list(OUTCOMES))
    haettu_eur: float = pa.Field(nullable=False, ge=0)
    maksettu_eur: float = pa.Field(nullable=True, ge=0)
    asiakastunnus: str = pa.Field(nullable=False)
    taydennys_pv: int = pa.Field(nullable=False, ge=0)
    extract_date: dt.date = pa.Field(nullable=False)

    @pa.dataframe_check(name="duplicate_id_in_file")
    def unique_id(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return _unique_in_file(data, "hakemus_id")

    @pa.check("hakemus_id", "tukimuoto", "yksikko", name=PERSONAL_DATA_RULE)
    def no_personal_data(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return _no_personal_data(data)

    @pa.check("asiakastunnus", name="checksum_hetu_or_ytunnus")
    def customer_id_checksum(cls, data: pa.PolarsData) -> pl.LazyFrame:
        nulls = data.lazyframe.select(pl.col(data.key).is_null().alias("missing"))
        valid = customer_id_validity(data.lazyframe, data.key)
        # a missing id is reported by the `required` rule, not here
        return pl.concat([nulls, valid], how="horizontal").select(pl.col("missing") | pl.col(data.key))

    @pa.check("asiakastunnus", name="hetu_birth_date")
    def customer_birth_date(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return hetu_birth_date_validity(data.lazyframe, data.key)

    @pa.dataframe_check(name="paatetty_not_before_saapunut")
    def decided_after_received(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select((pl.col("paatetty") >= pl.col("saapunut")).fill_null(True))

    @pa.dataframe_check(name="paatetty_not_after_extract_date")
    def decided_by_extract_date(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select((pl.col("paatetty") <= pl.col("extract_date")).fill_null(True))

    @pa.dataframe_check(name="paatos_required_when_decided")
    def outcome_when_decided(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("paatetty").is_null() | pl.col("paatos").is_not_null())

    @pa.dataframe_check(name="paatos_empty_when_pending")
    def no_outcome_when_pending(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("paatetty").is_not_null() | pl.col("paatos").is_null())

    class Config:
        strict = False
        coerce = False


class FeedbackModel(pa.DataFrameModel):
    """A survey response in one extract, after parsing."""

    vastaus_id: str = pa.Field(nullable=False)
    kysely: str = pa.Field(nullable=False, isin=list(SURVEYS))
    palvelu: str = pa.Field(nullable=False)
    vastattu: dt.datetime = pa.Field(nullable=False)
    arvosana: int = pa.Field(nullable=True, ge=1, le=5)
    tukimuoto: str = pa.Field(nullable=True)
    yksikko: str = pa.Field(nullable=True)
    hakemus_id: str = pa.Field(nullable=True)
    kieli: str = pa.Field(nullable=True, isin=list(LANGUAGES))
    vapaa_teksti: str = pa.Field(nullable=True)
    extract_date: dt.date = pa.Field(nullable=False)

    @pa.dataframe_check(name="duplicate_id_in_file")
    def unique_id(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return _unique_in_file(data, "vastaus_id")

    @pa.check("vastaus_id", "kysely", "palvelu", "tukimuoto", "yksikko", "hakemus_id", "kieli", name=PERSONAL_DATA_RULE)
    def no_personal_data(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return _no_personal_data(data)

    @pa.dataframe_check(name="vastattu_not_after_extract_date")
    def answered_by_extract_date(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select((pl.col("vastattu").dt.date() <= pl.col("extract_date")).fill_null(True))

    class Config:
        strict = False
        coerce = False


DECISIONS = ExportKind(
    name="decisions",
    prefix="maksatuspaatokset_",
    id_column="hakemus_id",
    model=DecisionModel,
    columns=(
        _text("hakemus_id", True),
        _lower("tukimuoto", True),
        _upper("yksikko", True),
        ColumnSpec("saapunut", True, parsing.parse_date, "date_format", fast_parse=parsing.fast_date),
        ColumnSpec("paatetty", False, parsing.parse_date, "date_format", fast_parse=parsing.fast_date),
        _lower("paatos", False),
        ColumnSpec("haettu_eur", True, parsing.parse_decimal, "decimal_format", fast_parse=parsing.fast_decimal),
        ColumnSpec("maksettu_eur", False, parsing.parse_decimal, "decimal_format", fast_parse=parsing.fast_decimal),
        _upper("asiakastunnus", True),
        ColumnSpec("taydennys_pv", False, parsing.parse_integer, "integer_format", default=0, fast_parse=parsing.fast_integer),
    ),
)

FEEDBACK = ExportKind(
    name="feedback",
    prefix="asiakaspalaute_",
    id_column="vastaus_id",
    model=FeedbackModel,
    columns=(
        _text("vastaus_id", True),
        _lower("kysely", True),
        _lower("palvelu", True),
        ColumnSpec("vastattu", True, parsing.parse_datetime, "date_format", fast_parse=parsing.fast_datetime),
        ColumnSpec("arvosana", False, parsing.parse_score, "score_1_to_5_or_EOS", parsing.score_text, fast_parse=parsing.fast_score),
        _lower("tukimuoto", False),
        _upper("yksikko", False),
        _text("hakemus_id", False),
        _lower("kieli", False),
        _text("vapaa_teksti", False),
    ),
)

EXPORT_KINDS = (DECISIONS, FEEDBACK)

# Readable names for pandera's built-in check names in the quarantine.
RULE_NAMES = {
    "not_nullable": "required",
    "field_uniqueness": "duplicate_id_in_file",
    "greater_than_or_equal_to(0)": "not_negative",
    "greater_than_or_equal_to(1)": "score_1_to_5_or_EOS",
    "less_than_or_equal_to(5)": "score_1_to_5_or_EOS",
}

# Which column a row-level (dataframe) check is about, for the quarantine.
# (The id check, duplicate_id_in_file, is about the kind's id column.)
DATAFRAME_CHECK_COLUMNS = {
    "paatetty_not_before_saapunut": "paatetty",
    "paatetty_not_after_extract_date": "paatetty",
    "paatos_required_when_decided": "paatos",
    "paatos_empty_when_pending": "paatos",
    "vastattu_not_after_extract_date": "vastattu",
}


def kind_of_file(file_name: str) -> ExportKind | None:
    """The export kind told by the file name's prefix (case-insensitive), or None."""
    lowered = file_name.lower()
    for kind in EXPORT_KINDS:
        if lowered.startswith(kind.prefix):
            return kind
    return None
