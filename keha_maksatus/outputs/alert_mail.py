"""The alert e-mail an official reads (Finnish): a nightly run that failed or was blocked by a
check, or, when enabled, what a run that succeeded found (a missed target in the running
period's nowcast, a file quarantined whole). Composed from plain values with Jinja2
templates (a plain-text part and an autoescaped HTML part) and sent with smtplib; the SMTP
settings come from the environment (KEHA_SMTP_*, KEHA_ALERT_*, KEHA_UI_URL).

The reasons put in a mail are the operator errors' one-line messages (built from masked
parts) or other text masked by the caller: never rows or identity codes."""

from __future__ import annotations

import datetime as dt
import os
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2

from keha_maksatus.errors import ConfigurationError
from keha_maksatus.outputs import finnish
from keha_maksatus.outputs.publish import open_published

HOST_ENV = "KEHA_SMTP_HOST"
PORT_ENV = "KEHA_SMTP_PORT"
USER_ENV = "KEHA_SMTP_USER"
PASSWORD_ENV = "KEHA_SMTP_PASSWORD"
PASSWORD_FILE_ENV = "KEHA_SMTP_PASSWORD_FILE"
STARTTLS_ENV = "KEHA_SMTP_STARTTLS"
FROM_ENV = "KEHA_ALERT_FROM"
TO_ENV = "KEHA_ALERT_TO"
UI_URL_ENV = "KEHA_UI_URL"
NOWCAST_ENV = "KEHA_ALERT_ON_NOWCAST_MISS"
NOWCAST_BELOW_ENV = "KEHA_ALERT_NOWCAST_BELOW"
QUARANTINE_ENV = "KEHA_ALERT_ON_FILE_QUARANTINE"

DEFAULT_PORT = 25
DEFAULT_FROM = "keha-maksatus@localhost"
DEFAULT_UI_URL = "http://localhost:3000"
# A running period's nowcast alerts when its chance of meeting the target is under this
# (the forecast check's WARN level, pipelines/assets/forecast.py).
DEFAULT_NOWCAST_BELOW = 0.5
SUBJECT_PREFIX = "KEHA-maksatus:"
HELSINKI = ZoneInfo("Europe/Helsinki")
SMTP_TIMEOUT_SECONDS = 60
# How long reading the published file waits for a writing connection on it to close.
PUBLISHED_WAIT_SECONDS = 30.0

_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.PackageLoader("keha_maksatus.outputs", "templates"),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True)
class Problem:
    """One thing that failed or was found: a step, a check or the run itself."""

    kind: str  # "step", "check" or "run"
    name: str
    reason: str


@dataclass(frozen=True)
class NowcastMiss:
    """A running period whose forecast meets its target with too small a chance."""

    indicator_fi: str
    period_label: str
    as_of: dt.date | None
    median: str  # formatted in Finnish
    target: str
    probability: str


@dataclass(frozen=True)
class AlertSettings:
    """Where and how alerts are sent, and which optional alerts are on."""

    host: str
    port: int
    user: str | None
    password_env: str | None
    password_file: Path | None
    starttls: bool
    sender: str
    recipients: tuple[str, ...]
    ui_url: str
    on_nowcast_miss: bool = False
    nowcast_below: float = DEFAULT_NOWCAST_BELOW
    on_file_quarantine: bool = False

    def password(self) -> str | None:
        """The SMTP password: KEHA_SMTP_PASSWORD, else the first line of KEHA_SMTP_PASSWORD_FILE."""
        if self.password_env:
            password, source = self.password_env, PASSWORD_ENV
        elif self.password_file is None:
            return None
        else:
            source = f"the SMTP password file {self.password_file} ({PASSWORD_FILE_ENV})"
            try:
                text = self.password_file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as error:
                raise ConfigurationError(f"cannot read {source}: {error}") from error
            password = text.splitlines()[0] if text else ""
        if not password.isascii():  # smtplib's AUTH sends ASCII only
            raise ConfigurationError(f"{source} holds characters other than ASCII, which SMTP login cannot send; use an ASCII password")
        return password

    def run_link(self, run_id: str) -> str:
        return f"{self.ui_url.rstrip('/')}/runs/{run_id}"


def alert_settings(environ: Mapping[str, str] | None = None) -> AlertSettings | None:
    """The alert settings of the environment; None when KEHA_SMTP_HOST is not set (no mail
    is sent). A value that cannot be used raises ConfigurationError naming the variable."""
    environ = os.environ if environ is None else environ

    def value(name: str) -> str | None:
        text = environ.get(name, "").strip()
        return text or None  # an empty variable counts as unset, as in config.py

    host = value(HOST_ENV)
    if host is None:
        return None
    port_text = value(PORT_ENV) or str(DEFAULT_PORT)
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigurationError(f"{PORT_ENV} = {port_text!r} is not a port number (1-65535)")
    recipients = tuple(part.strip() for part in (value(TO_ENV) or "").split(",") if part.strip())
    if not recipients:
        raise ConfigurationError(f"{HOST_ENV} is set but {TO_ENV} names no recipient; set {TO_ENV} (comma-separated addresses)")
    below_text = value(NOWCAST_BELOW_ENV)
    below = DEFAULT_NOWCAST_BELOW
    if below_text is not None:
        try:
            below = float(below_text)
        except ValueError:
            below = -1.0
        if not 0.0 <= below <= 1.0:
            raise ConfigurationError(f"{NOWCAST_BELOW_ENV} = {below_text!r} is not a share between 0 and 1 (e.g. 0.5)")
    password_file = value(PASSWORD_FILE_ENV)
    return AlertSettings(
        host=host,
        port=int(port_text),
        user=value(USER_ENV),
        password_env=value(PASSWORD_ENV),
        password_file=Path(password_file) if password_file else None,
        starttls=_flag(environ, STARTTLS_ENV),
        sender=value(FROM_ENV) or DEFAULT_FROM,
        recipients=recipients,
        ui_url=value(UI_URL_ENV) or DEFAULT_UI_URL,
        on_nowcast_miss=_flag(environ, NOWCAST_ENV),
        nowcast_below=below,
        on_file_quarantine=_flag(environ, QUARANTINE_ENV),
    )


def _flag(environ: Mapping[str, str], name: str) -> bool:
    text = environ.get(name, "").strip().lower()
    if text in ("", "0", "false", "no"):
        return False
    if text in ("1", "true", "yes"):
        return True
    raise ConfigurationError(f"{name} = {environ[name]!r} is not 0 or 1")


def failure_mail(settings: AlertSettings, *, run_id: str, job: str, failed_at: dt.datetime, problems: list[Problem],
                 published: bool) -> EmailMessage:
    """The mail on a failed or blocked run. `published`: the warehouse was published before a
    later step failed (the report, dashboards or exports are then out of date)."""
    blocked = any(problem.kind == "check" for problem in problems) and not any(problem.kind == "step" for problem in problems)
    what = "julkaisu estetty" if blocked else "ajo epäonnistui"  # short: a long ASCII subject folds badly
    subject = f"{SUBJECT_PREFIX} {what}: {job}, ajo {run_id[:8]}"
    values = {
        "run_id": run_id, "job": job, "when": _helsinki(failed_at), "problems": problems, "published": published,
        "blocked": blocked, "link": settings.run_link(run_id),
    }
    return _message(settings, subject, "alert_failure", values)


def findings_mail(settings: AlertSettings, *, run_id: str, job: str, finished_at: dt.datetime,
                  nowcast_misses: list[NowcastMiss], quarantined: list[Problem]) -> EmailMessage:
    """The mail on what a successful run found: nowcast misses and files quarantined whole."""
    parts = []
    if nowcast_misses:
        parts.append("tavoite uhkaa jäädä saavuttamatta")
    if quarantined:
        parts.append("tiedosto karanteenissa kokonaan")
    subject = f"{SUBJECT_PREFIX} {' ja '.join(parts)}: {job}, ajo {run_id[:8]}"
    values = {
        "run_id": run_id, "job": job, "when": _helsinki(finished_at), "misses": nowcast_misses, "quarantined": quarantined,
        "link": settings.run_link(run_id), "below": finnish.percent(settings.nowcast_below),
    }
    return _message(settings, subject, "alert_findings", values)


def nowcast_misses(published_path: Path, below: float) -> list[NowcastMiss]:
    """Each indicator's nearest running period in the published kpi.forecast whose chance of
    meeting its target is under `below` (as the forecast check judges the first row)."""
    con = open_published(published_path, lock_wait_seconds=PUBLISHED_WAIT_SECONDS)
    try:
        rows = con.sql(
            "SELECT indicator, label_fi, period_label, as_of, median, target_op, target, probability_meets_target "
            "FROM kpi.forecast ORDER BY period_end, indicator"
        ).fetchall()
    finally:
        con.close()
    misses, seen = [], set()
    for indicator, label, period, as_of, median, op, target, chance in rows:
        if indicator in seen:
            continue
        seen.add(indicator)
        if chance is not None and chance < below:
            misses.append(NowcastMiss(
                indicator_fi=label, period_label=period, as_of=as_of,
                median=finnish.number(median, finnish.DECIMALS.get(indicator, 2)),
                target=finnish.target(op, target, indicator), probability=finnish.probability(chance),
            ))
    return misses


def _helsinki(moment: dt.datetime) -> str:
    local = moment.astimezone(HELSINKI)
    return f"{local.day}.{local.month}.{local.year} klo {local:%H.%M}"


def _message(settings: AlertSettings, subject: str, template: str, values: dict) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.recipients)
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain="keha-maksatus")
    message.set_content(_ENVIRONMENT.get_template(f"{template}.txt").render(**values), charset="utf-8")
    message.add_alternative(_ENVIRONMENT.get_template(f"{template}.html").render(subject=subject, **values), subtype="html",
                            charset="utf-8")
    return message


def send(settings: AlertSettings, message: EmailMessage) -> None:
    """Send over SMTP (STARTTLS and login when set); an SMTP or network failure raises."""
    password = (settings.password() or "") if settings.user else None  # a bad password setting stops before connecting
    with smtplib.SMTP(settings.host, settings.port, timeout=SMTP_TIMEOUT_SECONDS) as smtp:
        if settings.starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.user:
            smtp.login(settings.user, password)
        smtp.send_message(message)
