"""Finnish presentation: number and date formats (Babel's fi_FI, rounded half up), names of
indicators, rules and statuses."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, localcontext

from babel.dates import format_date
from babel.numbers import format_decimal, format_percent

from keha_maksatus.config import PROCESSING_TIME, SATISFACTION

LOCALE = "fi_FI"
NBSP = "\u00a0"  # Babel's fi_FI thousands separator, and the space before %
DASH = "–"
DECIMALS = {SATISFACTION: 2, PROCESSING_TIME: 1}
SHORT_NAMES = {SATISFACTION: "Asiakastyytyväisyys (1–5)", PROCESSING_TIME: "Käsittelyaika (pv)"}

RULES_FI = {
    "required": "pakollinen tieto puuttuu",
    "date_format": "päivämäärä ei kelpaa",
    "decimal_format": "summa ei ole luku",
    "integer_format": "päivien määrä ei ole kokonaisluku",
    "not_negative": "negatiivinen arvo",
    "allowed_values": "arvo ei ole sallittujen joukossa",
    "duplicate_id_in_file": "sama tunniste useammin kuin kerran tiedostossa",
    "checksum_hetu_or_ytunnus": "henkilö- tai Y-tunnuksen tarkiste ei täsmää",
    "paatetty_not_before_saapunut": "päätös ennen saapumista",
    "paatetty_not_after_extract_date": "päätös poimintapäivän jälkeen",
    "vastattu_not_after_extract_date": "vastaus poimintapäivän jälkeen",
    "hetu_birth_date": "henkilötunnuksen syntymäaika ei ole todellinen päivä",
    "paatos_required_when_decided": "päätös puuttuu, vaikka päätöspäivä on annettu",
    "paatos_empty_when_pending": "päätös annettu, vaikka päätöspäivä puuttuu",
    "score_1_to_5_or_EOS": "arvosana ei ole 1–5 tai EOS",
    "too_many_fields": "rivillä enemmän kenttiä kuin otsikossa",
}
STATUS_FI = {
    "ingested": "käytössä",
    "quarantined": "karanteenissa (liikaa hylättyjä rivejä)",
    "unreadable": "ei luettavissa",
    "duplicate_content": "sama sisältö jo luettu",
    "skipped": "ohitettu (ei tavallinen tiedosto)",
}
HEADERS_FI = {
    "indicator": "Mittarin tunnus",
    "label_fi": "Mittari",
    "period_label": "Jakso",
    "period_start": "Alkaa",
    "period_end": "Päättyy",
    "complete": "Jakso päättynyt",
    "target_op": "Tavoitteen suunta",
    "target": "Tavoite",
    "value": "Toteuma",
    "n": "Lukumäärä",
    "met": "Tavoite saavutettu",
    "ci_low": "Luottamusväli alaraja",
    "ci_high": "Luottamusväli yläraja",
    "net_value": "Nettokäsittelyaika (pv)",
    "campaign_n": "Kampanjavastauksia",
    "campaign_value": "Kampanjakyselyjen keskiarvo",
    "month": "Kuukausi",
    "year": "Vuosi",
    "tukimuoto": "Tukimuoto",
    "yksikko": "Yksikkö",
    "kysely": "Kysely",
    "mean_days": "Keskiarvo (pv)",
    "median_days": "Mediaani (pv)",
    "p90_days": "90 % persentiili (pv)",
    "share_within_30_days": "Osuus 30 päivässä",
    "net_mean_days": "Nettokeskiarvo (pv)",
    "days_from": "Käsittelyaika vähintään (pv)",
    "responses": "Vastauksia",
    "mean_score": "Keskiarvo",
    "share_4_5": "Osuus 4–5",
    "suppressed": "Piilotettu (alle 5 vastausta)",
    "campaign_suppressed": "Kampanjaluku piilotettu (alle 5 vastausta)",
    "as_of": "Tilanne",
    "age_band": "Ikä",
    "band_order": "Järjestys",
    "over_30_days": "Yli 30 päivää",
    "haettu_eur": "Haettu (EUR)",
    # the forecast tables
    "days_left": "Päiviä jakson loppuun",
    "seen_n": "Lukumäärä tähän mennessä",
    "seen_value": "Toteuma tähän mennessä",
    "expected_n": "Odotettu lukumäärä jakson lopussa",
    "median": "Ennuste (mediaani)",
    "low_80": "80 %:n ennusteväli alaraja",
    "high_80": "80 %:n ennusteväli yläraja",
    "low_95": "95 %:n ennusteväli alaraja",
    "high_95": "95 %:n ennusteväli yläraja",
    "probability_meets_target": "Tavoitteen saavuttamisen todennäköisyys",
    "pending_n": "Vireillä tilannepäivänä",
    "pending_expected_in_period": "Vireillä olevista päätetään jaksolla (odotettu)",
    "expected_arrivals": "Vielä saapuvia jakson loppuun (odotettu)",
    "arrivals_expected_in_period": "Saapuvista jakson lukuun (odotettu)",
    "basis_n": "Ennusteen perusta (päätöksiä tai vastauksia)",
    "drift_sigma": "Drift (keskihajonta)",
    "draws": "Simulointeja",
    "seed": "Siemenluku",
    "date": "Päivä",
    "observed": "Toteutunut",
    "cumulative_value": "Kertymä 1.1. alkaen (toteuma tai ennusteen mediaani)",
    "cumulative_n": "Lukumäärä (toteutunut tai odotettu)",
    "hakemus_id": "Hakemus",
    "saapunut": "Saapunut",
    "age_days": "Ikä (pv)",
    "probability_after_period_end": "Todennäköisyys: päätös jakson jälkeen",
    "probability_over_30_days": "Todennäköisyys: yli 30 päivää",
    "expected_days": "Odotettu käsittelyaika (pv)",
    "expected_effect_days": "Odotettu vaikutus jakson keskiarvoon (pv)",
    "oldest_n": "Vanhimpia vireillä olevia päätetään",
    "decided_by": "Päätetään viimeistään",
    "change_days": "Muutos ennusteeseen (pv)",
}


def number(value: float | int | None, decimals: int = 0) -> str:
    """1 234,5 (no-break space for thousands, decimal comma); a dash for None."""
    if value is None:
        return DASH
    pattern = "#,##0" + ("." + "0" * decimals if decimals else "")
    with half_up():
        return format_decimal(value, format=pattern, locale=LOCALE)


def percent(share: float | None) -> str:
    """63 % for 0.625: the share as written times 100, rounded half up to a whole percent."""
    if share is None:
        return DASH
    with half_up():
        return format_percent(share, locale=LOCALE)


def probability(share: float | None) -> str:
    """A simulated probability as a whole percent, never a certainty it is not: under
    1 % is "alle 1 %" and over 99 % "yli 99 %" (a few thousand draws tell no more)."""
    if share is None:
        return DASH
    if share < 0.005:
        return f"alle 1{NBSP}%"
    if share >= 0.995:
        return f"yli 99{NBSP}%"
    return percent(share)


def signed(value: float | None, decimals: int) -> str:
    """+1,5 or −0,3 (a true minus sign); ±0,0 when it rounds to zero."""
    if value is None:
        return DASH
    text = number(abs(value), decimals)
    if text.strip("0,") == "":
        return f"±{text}"
    return ("+" if value > 0 else "\u2212") + text


def half_up():
    """Babel rounds in the decimal context (half even by default, 4,125 -> 4,12): half up,
    as people round and the README promises (4,125 -> 4,13)."""
    return localcontext(rounding=ROUND_HALF_UP)


def date(day: dt.date | None) -> str:
    return DASH if day is None else format_date(day, "d.M.y", locale=LOCALE)


def month(day: dt.date) -> str:
    """tammikuu 2022 (the month's name as it stands alone)."""
    return format_date(day, "LLLL y", locale=LOCALE)


def yes_no(value: bool | None) -> str:
    return DASH if value is None else ("kyllä" if value else "ei")


def target(op: str | None, value: float | None, indicator: str) -> str:
    if op is None or value is None:
        return DASH
    return f"{op} {number(value, 1 if indicator == SATISFACTION else 0)}"
