"""A deterministic generator of realistic landing folders.

Applications are generated in chunks from a seed, so millions of rows take bounded
memory; each chunk is appended to every extract it belongs to. Extract k (dated D_k)
holds the applications received since D_{k-1} plus those still pending at D_{k-1},
each in its state at D_k: a later extract turns pending applications into decided ones.

What makes the data hard to forecast exactly, as real data is (see `_Calendar`):
- arrivals follow the months (many in Jan-Mar and Aug-Oct, few in July and at Christmas,
  fewer at weekends), each instrument with its own strength of the pattern;
- decisions are made on weekdays, at a quarter of the pace in July and a slower pace over
  Christmas, so an application in progress then waits longer;
- processing time drifts within each year by a seed-dependent amount (-15 %..+20 % over
  the year, pulled back towards the usual level), and so does satisfaction;
- instruments differ in mean and shape (ESF/ERDF long-tailed, expense compensation fast
  and tight) and a few per cent of applications stall for 90-300 days, so the backlog ages;
- responses are fewer in July and at Christmas, and scores dip a little after the summer.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import xlsxwriter

from keha_maksatus.ingest.identifiers import HETU_CHECK_CHARS, YTUNNUS_WEIGHTS
from keha_maksatus.ingest.schemas import INSTRUMENTS

CHUNK_ROWS = 250_000
INSTRUMENT_WEIGHTS = (0.30, 0.25, 0.15, 0.08, 0.10, 0.07, 0.05)
# Processing (decision pace) per instrument, in working days at the usual pace, before
# the customer's supplement: mean, gamma shape (small = long tail, large = tight), share
# that stalls for STALL_DAYS, how strongly its arrivals follow ARRIVAL_MONTHS, and how
# often it waits for the customer's supplement.
INSTRUMENT_MEAN_DAYS = (16.0, 12.5, 9.0, 19.5, 25.0, 28.0, 14.0)
INSTRUMENT_SHAPES = (4.0, 5.0, 16.0, 3.0, 1.5, 1.3, 3.0)
INSTRUMENT_STALL_SHARES = (0.04, 0.03, 0.01, 0.05, 0.06, 0.07, 0.04)
INSTRUMENT_SEASONALITY = (1.0, 0.8, 0.5, 1.0, 1.4, 1.4, 0.6)
INSTRUMENT_SUPPLEMENT_SHARES = (0.30, 0.25, 0.10, 0.30, 0.45, 0.45, 0.30)  # waited for the customer 3-20 days
STALL_DAYS = (90, 300)
INSTRUMENT_MEAN_EUR = (9000.0, 4000.0, 800.0, 6000.0, 60000.0, 90000.0, 2000.0)
OFFICE_CODES = ("UUS", "VAR", "SAT", "HAM", "PIR", "KAS", "ESA", "PSA", "PKA", "KES", "EPO", "POH", "PPO", "KAI", "LAP")
OFFICE_WEIGHTS = (0.28, 0.09, 0.04, 0.06, 0.10, 0.05, 0.03, 0.05, 0.03, 0.05, 0.04, 0.04, 0.07, 0.02, 0.05)
OUTCOMES = ("myönteinen", "kielteinen", "osittain myönteinen", "raukeaa")
OUTCOME_WEIGHTS = (0.82, 0.07, 0.08, 0.03)
SURVEYS = ("kohtaaminen", "jalkikysely", "kampanja")
SURVEY_WEIGHTS = (0.55, 0.35, 0.10)
SERVICES = ("maksatus", "neuvonta", "rekrytointi")
SERVICE_WEIGHTS = (0.8, 0.1, 0.1)
SCORE_WEIGHTS = (0.03, 0.05, 0.12, 0.35, 0.40, 0.05)  # 1..5 and EOS
# Relative arrivals and responses per day by month (January first), at weekends, and at
# Christmas (from 20 December); the mean score's shift by month (a dip after the slow July).
ARRIVAL_MONTHS = (1.30, 1.25, 1.30, 1.00, 0.95, 0.80, 0.35, 1.10, 1.20, 1.15, 1.00, 0.85)
RESPONSE_MONTHS = (1.10, 1.10, 1.15, 1.00, 1.00, 0.85, 0.40, 0.90, 1.10, 1.10, 1.05, 0.85)
SCORE_MONTHS = (0.0, 0.0, 0.02, 0.03, 0.03, 0.0, -0.04, -0.08, -0.05, 0.0, 0.02, 0.04)
WEEKEND_ARRIVALS = 0.35
CHRISTMAS_ARRIVALS = 0.4
# Decision pace per calendar day: weekdays 7/5 (so a working day's pace averages one
# calendar day), weekends none, a quarter in most of July, half over Christmas.
WEEKDAY_PACE = 1.4
JULY_PACE = 0.25
CHRISTMAS_PACE = 0.5
# Drift over one year: processing time as a factor (-15 %..+20 %), the mean score in points.
PROCESSING_DRIFT = (-0.15, 0.20)
SCORE_DRIFT = (-0.10, 0.10)
SCORE_BASE_SHIFT = -0.04
CALENDAR_STREAM = 1_000_000_007  # the seed stream of the calendar, apart from the chunks'
COMMENTS = (
    "Nopea käsittely, kiitos!",
    "Maksatus kesti liian kauan.",
    "Asiointi sujui hyvin.",
    "Ohjeet olivat epäselviä, soittakaa 040 123 4567.",
    "Vastatkaa sähköpostiin matti.meikalainen@example.fi",
    "Päätöksessä oli virhe, hetuni 131052-308T.",
    "Snabb handläggning.",
)
DECISION_COLUMNS = [
    "hakemus_id", "tukimuoto", "yksikko", "saapunut", "paatetty", "paatos",
    "haettu_eur", "maksettu_eur", "asiakastunnus", "taydennys_pv",
]
FEEDBACK_COLUMNS = [
    "vastaus_id", "kysely", "palvelu", "vastattu", "arvosana", "tukimuoto",
    "yksikko", "hakemus_id", "kieli", "vapaa_teksti",
]


@dataclass(frozen=True)
class Extract:
    """One file to write: its date, format and CSV dialect."""

    date: dt.date
    fmt: str = "csv"  # csv, xlsx or parquet
    encoding: str = "utf-8-sig"  # utf-8-sig, utf-8 or cp1252
    separator: str = ";"
    iso: bool = False  # ISO dates and decimal point instead of the Finnish forms

    def file_name(self, prefix: str) -> str:
        return f"{prefix}_{self.date.isoformat()}.{self.fmt}"


# The committed sample: every format and dialect the contract accepts. Its newest extracts
# are dated 31.10.2022, so that the year 2022 is still running in the data.
SAMPLE_DECISION_EXTRACTS = (
    Extract(dt.date(2021, 6, 30), "csv", "utf-8-sig", ";"),
    Extract(dt.date(2021, 12, 31), "csv", "cp1252", ";"),
    Extract(dt.date(2022, 6, 30), "xlsx"),
    Extract(dt.date(2022, 10, 31), "csv", "utf-8", "\t", iso=True),
)
SAMPLE_FEEDBACK_EXTRACTS = (
    Extract(dt.date(2021, 12, 31), "parquet"),
    Extract(dt.date(2022, 10, 31), "csv", "cp1252", ";"),
)


def half_year_extracts(first_year: int, last_year: int) -> tuple[Extract, ...]:
    """Finnish CSV extracts at every half-year end (the scale data)."""
    return tuple(
        Extract(dt.date(year, month, day))
        for year in range(first_year, last_year + 1)
        for month, day in ((6, 30), (12, 31))
    )


def write_sample(
    out: Path,
    decisions: int = 6000,
    feedback: int = 3000,
    seed: int = 2022,
    csv_only: bool = False,
    first_year: int = 2021,
    last_year: int = 2022,
    bad_rows: bool = True,
) -> list[Path]:
    """Write a landing folder; returns the files written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    default = (first_year, last_year) == (2021, 2022) and not csv_only
    decision_extracts = SAMPLE_DECISION_EXTRACTS if default else half_year_extracts(first_year, last_year)
    feedback_extracts = SAMPLE_FEEDBACK_EXTRACTS if default else tuple(e for e in decision_extracts if e.date.month == 12)
    calendar = _Calendar.build(seed, dt.date(first_year, 1, 1), decision_extracts[-1].date)

    written = _write_extracts(
        out, "maksatuspaatokset", decision_extracts, decisions, seed,
        lambda rng, offset, n: _decision_chunk(rng, offset, n, calendar), _decision_rows_for,
        DECISION_COLUMNS, _bad_decisions() if bad_rows else None,
    )
    written += _write_extracts(
        out, "asiakaspalaute", feedback_extracts, feedback, seed + 1,
        lambda rng, offset, n: _feedback_chunk(rng, offset, n, calendar, decisions), _feedback_rows_for,
        FEEDBACK_COLUMNS, _bad_feedback() if bad_rows else None,
    )
    return written


@dataclass(frozen=True)
class _Calendar:
    """Day-by-day rates of the generated range, the same for every chunk of a seed.

    Day 0 is `start`; arrays run past `end` far enough for the slowest decision."""

    start: dt.date
    end: dt.date
    arrival_p: np.ndarray  # instrument x received day (start .. end - 6): probabilities
    pace_cum: np.ndarray  # cumulative decision pace by day
    processing_factor: np.ndarray  # drift of processing time by day
    response_p: np.ndarray  # answered day (start .. end): probabilities
    score_shift: np.ndarray  # shift of the mean score by answered day

    @classmethod
    def build(cls, seed: int, start: dt.date, end: dt.date) -> _Calendar:
        rng = np.random.default_rng([seed, CALENDAR_STREAM])
        days = np.arange(np.datetime64(start), np.datetime64(end) + 2 * 365 + STALL_DAYS[1] * 2)
        month = days.astype("datetime64[M]").astype(np.int64) % 12
        day_of_month = (days - days.astype("datetime64[M]")).astype(np.int64) + 1
        weekend = ((days.astype(np.int64) + 3) % 7) >= 5  # 1970-01-01 was a Thursday
        christmas = ((month == 11) & (day_of_month >= 20)) | ((month == 0) & (day_of_month <= 6))
        july = (month == 6) & (day_of_month >= 4) & (day_of_month <= 29)

        received = slice(0, max(1, (end - start).days - 5))
        season = np.asarray(ARRIVAL_MONTHS)[month[received]]
        strength = np.asarray(INSTRUMENT_SEASONALITY)[:, None]
        arrivals = np.maximum(0.05, 1 + strength * (season - 1))
        arrivals *= np.where(weekend[received], WEEKEND_ARRIVALS, 1.0) * np.where(christmas[received] & (month[received] == 11), CHRISTMAS_ARRIVALS, 1.0)

        pace = np.where(weekend, 0.0, WEEKDAY_PACE * np.where(july, JULY_PACE, np.where(christmas, CHRISTMAS_PACE, 1.0)))

        years = days.astype("datetime64[Y]").astype(np.int64) + 1970
        first_year = int(years[0])
        year_of_day = (days - days.astype("datetime64[Y]")).astype(np.int64) / 365.0
        processing = _drift(rng, years - first_year, year_of_day, 1.0, PROCESSING_DRIFT, relative=True)
        score = _drift(rng, years - first_year, year_of_day, 0.0, SCORE_DRIFT, relative=False)

        answered = slice(0, (end - start).days + 1)
        responses = np.asarray(RESPONSE_MONTHS)[month[answered]] * np.where(christmas[answered], 0.8, 1.0)
        return cls(
            start, end,
            arrivals / arrivals.sum(axis=1, keepdims=True),
            np.cumsum(pace),
            processing,
            responses / responses.sum(),
            SCORE_BASE_SHIFT + score[answered] + np.asarray(SCORE_MONTHS)[month[answered]],
        )

    def decided_day(self, ready_day: np.ndarray, work_days: np.ndarray) -> np.ndarray:
        """The first day by which `work_days` of decision pace have passed since `ready_day`."""
        target = self.pace_cum[ready_day] + work_days
        return np.minimum(np.searchsorted(self.pace_cum, target, side="left"), len(self.pace_cum) - 1)


def _drift(rng, year_index: np.ndarray, year_fraction: np.ndarray, level: float, bounds, relative: bool) -> np.ndarray:
    """A level drifting linearly within each year by a random amount within `bounds`, each
    year starting where the last ended; the draw is pulled back towards `level`."""
    knots = [level]
    for _ in range(int(year_index.max()) + 1):
        current = knots[-1]
        pull = 0.6 * ((current / level - 1) if relative else (current - level))
        change = float(np.clip(rng.uniform(*bounds) - pull, *bounds))
        knots.append(current * (1 + change) if relative else current + change)
    knots = np.asarray(knots)
    return knots[year_index] + (knots[year_index + 1] - knots[year_index]) * year_fraction


def _write_extracts(out, prefix, extracts, total, seed, make_chunk, rows_for, columns, bad) -> list[Path]:
    writers = [_ExtractWriter(out / e.file_name(prefix), e, columns) for e in extracts]
    for index, offset in enumerate(range(0, total, CHUNK_ROWS)):
        rng = np.random.default_rng([seed, index])
        chunk = make_chunk(rng, offset, min(CHUNK_ROWS, total - offset))
        previous = None
        for extract, writer in zip(extracts, writers):
            writer.write(rows_for(chunk, previous, extract.date))
            previous = extract.date
    if bad is not None:
        # The deliberate bad rows go into the last extract of the kind.
        writers[-1].write_text_rows(bad)
    return [w.close() for w in writers]


class _ExtractWriter:
    """Appends typed chunks to one file in its format and dialect."""

    def __init__(self, path: Path, extract: Extract, columns: list[str]):
        self.path, self.extract, self.columns = path, extract, columns
        self.frames: list[pl.DataFrame] = []
        self.handle = None
        if extract.fmt == "csv":
            self.handle = path.open("w", encoding=extract.encoding, newline="")
            self.handle.write(extract.separator.join(columns) + "\r\n")

    def write(self, typed: pl.DataFrame) -> None:
        if self.extract.fmt in ("parquet", "xlsx"):
            self.frames.append(typed.select(self.columns))
        else:
            self.write_text_rows(_as_text(typed.select(self.columns), self.extract))

    def write_text_rows(self, text: pl.DataFrame) -> None:
        text = text.select(self.columns)
        if self.handle is not None:
            csv = text.write_csv(separator=self.extract.separator, include_header=False, line_terminator="\r\n", quote_style="necessary")
            self.handle.write(csv)
        else:
            self.frames.append(text)

    def close(self) -> Path:
        if self.handle is not None:
            self.handle.close()
            return self.path
        frames = self.frames
        if len({tuple(f.dtypes) for f in frames}) > 1:  # typed rows and text bad rows
            frames = [f.select(pl.all().cast(pl.String)) for f in frames]
        frame = pl.concat(frames)
        if self.extract.fmt == "parquet":
            frame.write_parquet(self.path)
        else:
            # A fixed creation time keeps the file byte-for-byte deterministic.
            with xlsxwriter.Workbook(self.path) as workbook:
                workbook.set_properties({"created": dt.datetime.combine(self.extract.date, dt.time())})
                frame.write_excel(workbook, worksheet="Sheet1", autofit=False)
        return self.path


def _as_text(typed: pl.DataFrame, extract: Extract) -> pl.DataFrame:
    """Dates and numbers as the extract's dialect writes them."""
    date_format = "%Y-%m-%d" if extract.iso else "%-d.%-m.%Y"
    datetime_format = "%Y-%m-%d %H:%M:%S" if extract.iso else "%-d.%-m.%Y %H:%M"
    exprs = []
    for name, dtype in typed.schema.items():
        column = pl.col(name)
        if dtype == pl.Date:
            exprs.append(column.dt.strftime(date_format))
        elif dtype == pl.Datetime:
            exprs.append(column.dt.strftime(datetime_format))
        elif dtype == pl.Float64:
            text = column.round(2).cast(pl.String)
            exprs.append(text if extract.iso else text.str.replace(".", ",", literal=True))
        else:
            exprs.append(column.cast(pl.String))
    return typed.select(exprs)


def _choice(rng: np.random.Generator, values, weights, n: int) -> np.ndarray:
    return np.asarray(values, dtype=object)[rng.choice(len(values), size=n, p=np.asarray(weights) / sum(weights))]


def _customer_ids(rng: np.random.Generator, n: int) -> list[str]:
    """Checksum-valid ids: 40 % personal identity codes, 60 % business IDs."""
    is_person = rng.random(n) < 0.4
    birth = np.datetime64("1950-01-01") + rng.integers(0, 365 * 50, n).astype("timedelta64[D]")
    individual = rng.integers(2, 900, n)
    body = rng.integers(100000, 3300000, n)
    weights = np.array(YTUNNUS_WEIGHTS)
    ids = []
    for i in range(n):
        if is_person[i]:
            day = birth[i].astype(object)
            ddmmyy = f"{day.day:02d}{day.month:02d}{day.year % 100:02d}"
            sign = "-" if day.year < 2000 else "A"
            ids.append(f"{ddmmyy}{sign}{individual[i]:03d}{HETU_CHECK_CHARS[int(ddmmyy + f'{individual[i]:03d}') % 31]}")
        else:
            digits = f"{body[i]:07d}"
            rest = int(np.dot(weights, [int(d) for d in digits])) % 11
            if rest == 1:
                digits = f"{(body[i] + 1) % 10_000_000:07d}"
                rest = int(np.dot(weights, [int(d) for d in digits])) % 11
            if rest == 1:  # two in a row cannot both have rest 1 often; fall back to a known-valid id
                digits, rest = "0737546", 9
            ids.append(f"{digits}-{0 if rest == 0 else 11 - rest}")
    return ids


def _decision_chunk(rng, offset: int, n: int, calendar: _Calendar) -> pl.DataFrame:
    instrument_index = rng.choice(len(INSTRUMENTS), size=n, p=INSTRUMENT_WEIGHTS)
    received_day = np.zeros(n, dtype=np.int64)
    for index in range(len(INSTRUMENTS)):  # each instrument by its own seasonal pattern
        rows = np.flatnonzero(instrument_index == index)
        received_day[rows] = rng.choice(calendar.arrival_p.shape[1], size=rows.size, p=calendar.arrival_p[index])
    received = np.datetime64(calendar.start) + received_day.astype("timedelta64[D]")
    supplement = np.where(rng.random(n) < np.asarray(INSTRUMENT_SUPPLEMENT_SHARES)[instrument_index], rng.integers(3, 21, n), 0)
    shape = np.asarray(INSTRUMENT_SHAPES)[instrument_index]
    work = np.asarray(INSTRUMENT_MEAN_DAYS)[instrument_index] * calendar.processing_factor[received_day] * rng.gamma(shape, 1 / shape)
    stalled = rng.random(n) < np.asarray(INSTRUMENT_STALL_SHARES)[instrument_index]
    work = np.where(stalled, rng.uniform(*STALL_DAYS, n), np.clip(work, 0.05, 2 * 365))
    decided_day = calendar.decided_day(received_day + supplement, work)
    days = decided_day - received_day
    applied = np.round(rng.lognormal(np.log(np.asarray(INSTRUMENT_MEAN_EUR)[instrument_index]), 0.6), 2)
    outcome = _choice(rng, OUTCOMES, OUTCOME_WEIGHTS, n)
    paid_share = np.where(outcome == "myönteinen", 1.0, np.where(outcome == "osittain myönteinen", rng.uniform(0.3, 0.9, n), np.nan))
    offices = _choice(rng, OFFICE_CODES, OFFICE_WEIGHTS, n)
    prefix = np.where(np.isin(instrument_index, [0, 1, 3]), "TE-", "ELY-")
    # A few customers apply many times: draw ids from a pool a third the size of the chunk.
    pool = _customer_ids(rng, max(1, n // 3))
    return pl.DataFrame(
        {
            "hakemus_id": [f"H{offset + i + 1:08d}" for i in range(n)],
            "tukimuoto": np.asarray(INSTRUMENTS, dtype=object)[instrument_index],
            "yksikko": np.char.add(prefix.astype(str), offices.astype(str)),
            "saapunut": received.astype("datetime64[D]"),
            "decided_on": (received + days.astype("timedelta64[D]")).astype("datetime64[D]"),
            "paatos_final": outcome,
            "haettu_eur": applied,
            "maksettu_final": np.round(applied * paid_share, 2),
            "asiakastunnus": np.asarray(pool, dtype=object)[rng.integers(0, len(pool), n)],
            "taydennys_pv": supplement,
        },
        schema_overrides={"tukimuoto": pl.String, "paatos_final": pl.String, "asiakastunnus": pl.String, "yksikko": pl.String},
    ).with_columns(pl.col("maksettu_final").fill_nan(None))


def _decision_rows_for(chunk: pl.DataFrame, previous: dt.date | None, extract_date: dt.date) -> pl.DataFrame:
    """The chunk's rows in the extract dated `extract_date`, in their state then."""
    received_before = pl.col("saapunut") <= extract_date
    new_or_pending = (
        pl.lit(True) if previous is None else (pl.col("saapunut") > previous) | (pl.col("decided_on") > previous)
    )
    decided = pl.col("decided_on") <= extract_date
    return chunk.filter(received_before & new_or_pending).select(
        "hakemus_id", "tukimuoto", "yksikko", "saapunut",
        pl.when(decided).then(pl.col("decided_on")).alias("paatetty"),
        pl.when(decided).then(pl.col("paatos_final")).alias("paatos"),
        "haettu_eur",
        pl.when(decided).then(pl.col("maksettu_final")).alias("maksettu_eur"),
        "asiakastunnus",
        pl.when(pl.col("taydennys_pv") > 0).then(pl.col("taydennys_pv")).alias("taydennys_pv"),
    )


def _feedback_chunk(rng, offset: int, n: int, calendar: _Calendar, decisions: int) -> pl.DataFrame:
    answered_day = rng.choice(calendar.response_p.size, size=n, p=calendar.response_p)
    seconds = answered_day * 86400 + rng.integers(0, 86400, n)
    answered = np.datetime64(dt.datetime.combine(calendar.start, dt.time())) + seconds.astype("timedelta64[s]")
    score_probs = np.asarray(SCORE_WEIGHTS)
    scores = rng.choice(6, size=n, p=score_probs / score_probs.sum())
    # The day's shift of the mean: a score moves one step up (or down) with a probability
    # that makes the mean move by about the shift.
    shift = calendar.score_shift[answered_day]
    move = rng.random(n) < np.abs(shift) / 0.6
    scores = np.where(move & (shift > 0) & (scores < 4), scores + 1, scores)
    scores = np.where(move & (shift < 0) & (scores > 0) & (scores < 5), scores - 1, scores)
    score_text = np.where(scores == 5, "EOS", (scores + 1).astype(str))
    linked = rng.random(n) < 0.6
    instrument_index = rng.choice(len(INSTRUMENTS), size=n, p=INSTRUMENT_WEIGHTS)
    offices = _choice(rng, OFFICE_CODES, OFFICE_WEIGHTS, n)
    comment = np.where(rng.random(n) < 0.2, _choice(rng, COMMENTS, [1] * len(COMMENTS), n), None)
    columns = {
        "vastaus_id": [f"V{offset + i + 1:08d}" for i in range(n)],
        "kysely": _choice(rng, SURVEYS, SURVEY_WEIGHTS, n),
        "palvelu": _choice(rng, SERVICES, SERVICE_WEIGHTS, n),
        "arvosana": score_text.astype(object),
        "tukimuoto": np.where(linked, np.asarray(INSTRUMENTS, dtype=object)[instrument_index], None),
        "yksikko": np.where(linked, np.char.add("TE-", offices.astype(str)).astype(object), None),
        "hakemus_id": np.where(linked, np.char.add("H", np.char.zfill(rng.integers(1, max(2, decisions), n).astype(str), 8)).astype(object), None),
        "kieli": _choice(rng, ("fi", "sv", "en"), (0.85, 0.12, 0.03), n),
        "vapaa_teksti": comment,
    }
    frame = pl.DataFrame({name: pl.Series(name, list(values), dtype=pl.String) for name, values in columns.items()})
    return frame.with_columns(pl.Series("vastattu", answered.astype("datetime64[us]"))).select(FEEDBACK_COLUMNS)


def _feedback_rows_for(chunk: pl.DataFrame, previous: dt.date | None, extract_date: dt.date) -> pl.DataFrame:
    day = pl.col("vastattu").dt.date()
    after = pl.lit(True) if previous is None else day > previous
    return chunk.filter(after & (day <= extract_date))


def _bad_decisions() -> pl.DataFrame:
    """Deliberately bad rows (as text), each breaking one rule, plus an unlisted instrument."""
    rows = [
        ("HBAD-001", "palkkatuki", "TE-UUS", "2022-03-01", "2022-03-20", "myönteinen", "1200.00", "1200.00", "131052-308A", ""),  # checksum
        ("HBAD-002", "starttiraha", "TE-PIR", "2022-02-31", "", "", "500.00", "", "131052-308T", ""),  # impossible date
        ("HBAD-003", "kulukorvaus", "ELY-LAP", "2022-04-01", "2022-04-20", "myönteinen", "-50.00", "", "0737546-2", ""),  # negative
        ("HBAD-004", "esr", "ELY-VAR", "2022-05-01", "2022-05-25", "", "3000.00", "", "0737546-2", ""),  # outcome missing
        ("HBAD-005", "eakr", "ELY-KES", "2022-06-10", "2022-06-01", "myönteinen", "9000.00", "9000.00", "0737546-2", ""),  # before receipt
        ("HBAD-006", "palkkatuki", "TE-HAM", "2022-07-01", "2022-07-21", "myönteinen", "2000.00", "2000.00", "0737546-2", ""),  # duplicate
        ("HBAD-006", "palkkatuki", "TE-HAM", "2022-07-01", "", "", "2000.00", "", "0737546-2", ""),  # duplicate
        ("HBAD-007", "koulutus", "TE-UUS", "2022-08-01", "2022-08-15", "myönteinen", "700.00", "700.00", "0737546-2", ""),  # unlisted: kept
    ]
    return _text_rows(rows, DECISION_COLUMNS)


def _bad_feedback() -> pl.DataFrame:
    rows = [
        ("VBAD-001", "kohtaaminen", "maksatus", "15.3.2022 10:00", "6", "", "", "", "fi", ""),
        ("VBAD-002", "kohtaaminen", "maksatus", "16.3.2022 11:00", "4,5", "", "", "", "fi", ""),
        ("VBAD-003", "jalkikysely", "maksatus", "17.3.2022 12:00", "hyvä", "", "", "", "fi", ""),
        ("VBAD-004", "kohtaaminen", "maksatus", "18.3.2022 13:00", "0", "", "", "", "fi", ""),
        ("VBAD-005", "pikakysely", "maksatus", "19.3.2022 14:00", "5", "", "", "", "fi", ""),
        ("VBAD-006", "kohtaaminen", "maksatus", "20.3.2022 15:00", "EOS", "", "", "", "sv", "Ingen åsikt"),  # valid: no score
    ]
    return _text_rows(rows, FEEDBACK_COLUMNS)


def _text_rows(rows: list[tuple[str, ...]], columns: list[str]) -> pl.DataFrame:
    """Rows of text with empty cells as null (written as empty fields)."""
    return pl.DataFrame([tuple(v or None for v in row) for row in rows], schema={c: pl.String for c in columns}, orient="row")
