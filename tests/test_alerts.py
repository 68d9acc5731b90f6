"""Alert e-mails: real nightly runs that fail, are blocked or find something, the real
sensors evaluated against the runs' Dagster instance, and a real SMTP server (aiosmtpd)
whose received mail the tests read."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import html
import shutil
import smtplib
import socket
import sys
from html.parser import HTMLParser
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from dagster._utils.error import serializable_error_info_from_exc_info
from hypothesis import given, settings
from hypothesis import strategies as st

from keha_maksatus.config import DEFAULT_LANDING
from keha_maksatus.errors import ConfigurationError, one_line
from keha_maksatus.outputs.alert_mail import (
    SUBJECT_PREFIX,
    NowcastMiss,
    Problem,
    alert_settings,
    failure_mail,
    findings_mail,
    nowcast_misses,
    send,
)
from keha_maksatus.state import warehouse_files
from pipelines.alerts import FINDINGS_SENT_TAG, MONITORED_JOBS, SENT_TAG, failed_run_alert, run_findings_alert, step_reason
from pipelines.definitions import build_definitions
from pipelines.resources import WarehouseResource

from conftest import DECISION_HEADER, FEEDBACK_HEADER, HETU, YTUNNUS, decision, response, write_export
from output_scan import personal_data_in

UI_URL = "http://dagster.example.fi:3000"
D = "maksatuspaatokset_{}.csv"


# --- a real SMTP server ---------------------------------------------------------------


class Collector:
    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []
        self.recipients: list[list[str]] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp(monkeypatch):
    """A local SMTP server collecting what it receives, and the environment pointing at it."""
    collector = Collector()
    controller = Controller(collector, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        monkeypatch.setenv("KEHA_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("KEHA_SMTP_PORT", str(controller.port))
        monkeypatch.setenv("KEHA_ALERT_FROM", "keha-maksatus@example.fi")
        monkeypatch.setenv("KEHA_ALERT_TO", "paivystaja@example.fi, raportointi@example.fi")
        monkeypatch.setenv("KEHA_UI_URL", UI_URL)
        for name in ("KEHA_SMTP_USER", "KEHA_SMTP_PASSWORD", "KEHA_SMTP_PASSWORD_FILE", "KEHA_SMTP_STARTTLS",
                     "KEHA_ALERT_ON_NOWCAST_MISS", "KEHA_ALERT_ON_FILE_QUARANTINE", "KEHA_ALERT_NOWCAST_BELOW"):
            monkeypatch.delenv(name, raising=False)
        yield collector
    finally:
        controller.stop()


def text_of(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def html_of(message) -> str:
    return message.get_body(preferencelist=("html",)).get_content()


def assert_no_personal_data(mail, landing: Path) -> None:
    """No identity code, business ID, e-mail, IBAN or phone number of the input in either part."""
    found = personal_data_in(landing)
    assert found  # the input holds some: the scan sees it
    for part in (text_of(mail), html_of(mail)):
        assert not {secret for secret in found if secret in part}


class Page(HTMLParser):
    """The text and tags of an HTML part."""

    def __init__(self, markup: str):
        super().__init__()
        self.text, self.tags = [], []
        self.feed(markup)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


# --- real runs --------------------------------------------------------------------------


def small_landing(folder: Path) -> Path:
    write_export(folder, D.format("2022-06-30"), DECISION_HEADER, [
        decision("H1", "1.1.2022", "11.1.2022", asiakas=HETU),
        decision("H2", "1.2.2022", asiakas=YTUNNUS),
        decision("H3", "1.3.2022", "20.3.2022"),
    ])
    write_export(folder, D.format("2022-12-31"), DECISION_HEADER, [
        decision("H2", "1.2.2022", "1.4.2022", asiakas=YTUNNUS),
        decision("H5", "1.9.2022", "15.9.2022"),
    ])
    write_export(folder, "asiakaspalaute_2022-12-31.csv", FEEDBACK_HEADER, [
        response(f"V{i}", f"{i + 1}.3.2022", str(score)) for i, score in enumerate([5, 4, 4, 3, 5, 5])
    ])
    return folder


def run_nightly(landing: Path, published: Path, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    job = build_definitions(str(landing), str(published)).resolve_job_def("nightly")
    return job.execute_in_process(instance=instance, raise_on_error=False)


def tick(sensor, instance: dg.DagsterInstance, cursor: str | None, published: Path | None = None):
    """One evaluation of the sensor against the instance, as the daemon's tick runs it."""
    resources = {"warehouse": WarehouseResource(landing_dir=str(DEFAULT_LANDING), warehouse_path=str(published))} if published else None
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
        return sensor.evaluate_tick(context)


def start_cursor(sensor, instance, published: Path | None = None) -> str:
    """The cursor a newly started sensor sets: it looks only at runs that end after it."""
    first = tick(sensor, instance, None, published)
    assert "Initiating" in first.skip_message
    return first.cursor


# --- the failure alert -----------------------------------------------------------------


def test_a_failed_run_mails_its_failed_step_reason_and_link_once(tmp_path, monkeypatch, smtp):
    landing, published = small_landing(tmp_path / "landing"), tmp_path / "wh" / "maksatus.duckdb"
    instance = dg.DagsterInstance.ephemeral()
    monkeypatch.setenv("KEHA_PSEUDONYM_KEY", "first-key")
    assert run_nightly(landing, published, instance).success
    cursor = start_cursor(failed_run_alert, instance)
    monkeypatch.setenv("KEHA_PSEUDONYM_KEY", "second-key")  # the state was built with another key
    failed = run_nightly(landing, published, instance)
    assert not failed.success

    result = tick(failed_run_alert, instance, cursor)
    assert [reaction.dagster_run.run_id for reaction in result.dagster_run_reactions] == [failed.run_id]
    assert len(smtp.messages) == 1
    mail = smtp.messages[0]
    assert sorted(smtp.recipients[0]) == ["paivystaja@example.fi", "raportointi@example.fi"]
    assert mail["Subject"] == f"{SUBJECT_PREFIX} ajo epäonnistui: nightly, ajo {failed.run_id[:8]}"
    assert mail["From"] == "keha-maksatus@example.fi"
    text, page = text_of(mail), html_of(mail)
    link = f"{UI_URL}/runs/{failed.run_id}"
    assert f"KEHA-maksatuksen ajo nightly ({failed.run_id}) epäonnistui" in text
    assert "Epäonnistunut vaihe: ingest_landing_folder" in text
    assert "Syy: the working state" in text and "another pseudonym key" in text
    assert "Mitään ei julkaistu: edellinen julkaistu tietovarasto" in text
    assert f"Ajo Dagsterissa: {link}" in text
    assert f'<a href="{link}">' in page and "another pseudonym key" in page
    assert_no_personal_data(mail, landing)
    assert instance.get_run_by_id(failed.run_id).tags[SENT_TAG] == failed.run_id

    # The next tick has nothing new; a tick from the old cursor (reset) does not send it again.
    again = tick(failed_run_alert, instance, result.cursor)
    assert not again.dagster_run_reactions and len(smtp.messages) == 1
    reset = tick(failed_run_alert, instance, cursor)
    assert [reaction.dagster_run.run_id for reaction in reset.dagster_run_reactions] == [failed.run_id]
    assert len(smtp.messages) == 1


def test_a_blocked_run_mails_the_blocking_check_and_nothing_without_smtp(tmp_path, monkeypatch, smtp):
    landing, published = small_landing(tmp_path / "landing"), tmp_path / "wh" / "maksatus.duckdb"
    instance = dg.DagsterInstance.ephemeral()
    monkeypatch.setenv("KEHA_PSEUDONYM_KEY", "k")
    assert run_nightly(landing, published, instance).success
    cursor = start_cursor(failed_run_alert, instance)
    # The working state is lost and only part of the exports is there to rebuild from.
    shutil.rmtree(warehouse_files(published).state_dir)
    (landing / D.format("2022-06-30")).unlink()
    blocked = run_nightly(landing, published, instance)
    assert not blocked.success

    monkeypatch.delenv("KEHA_SMTP_HOST")
    skipped = tick(failed_run_alert, instance, cursor)
    assert "KEHA_SMTP_HOST is not set" in skipped.skip_message and blocked.run_id in skipped.skip_message
    assert smtp.messages == [] and SENT_TAG not in instance.get_run_by_id(blocked.run_id).tags

    monkeypatch.setenv("KEHA_SMTP_HOST", "127.0.0.1")
    tick(failed_run_alert, instance, cursor)
    [mail] = smtp.messages
    text = text_of(mail)
    assert mail["Subject"] == (f"{SUBJECT_PREFIX} julkaisu estetty: nightly, ajo {blocked.run_id[:8]}")
    assert f"ajo nightly ({blocked.run_id}) pysähtyi tarkistukseen" in text
    assert "Epäonnistunut tarkistus: quality_section / enough_data_to_publish" in text
    assert "markedly less data" in text
    assert "Epäonnistunut vaihe" not in text  # the check's step is told as the check
    assert "Mitään ei julkaistu" in text and f"{UI_URL}/runs/{blocked.run_id}" in text
    assert_no_personal_data(mail, landing)


def test_the_alert_logs_in_with_the_password_file(tmp_path, monkeypatch, smtp):
    """KEHA_SMTP_USER with KEHA_SMTP_PASSWORD_FILE logs in; a wrong password fails the send."""
    accepted = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        accepted.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"salainen-1", handled=False)

    collector = Collector()
    controller = Controller(collector, hostname="127.0.0.1", port=free_port(), authenticator=authenticator, auth_require_tls=False)
    controller.start()
    try:
        secret = tmp_path / "smtp_password"
        secret.write_text("salainen-1\n", encoding="utf-8")
        monkeypatch.setenv("KEHA_SMTP_PORT", str(controller.port))
        monkeypatch.setenv("KEHA_SMTP_USER", "keha")
        monkeypatch.setenv("KEHA_SMTP_PASSWORD_FILE", str(secret))
        settings_ = alert_settings()
        mail = failure_mail(settings_, run_id="r" * 36, job="nightly", failed_at=dt_now(), problems=[Problem("step", "s", "x")], published=False)
        send(settings_, mail)
        assert accepted == [(b"keha", b"salainen-1")] and len(collector.messages) == 1
        secret.write_text("wrong\n", encoding="utf-8")
        with pytest.raises(smtplib.SMTPAuthenticationError):
            send(alert_settings(), mail)
        attempts = len(accepted)
        assert attempts > 1 and set(accepted[1:]) == {(b"keha", b"wrong")}
        secret.write_text("salainen-ä\n", encoding="utf-8")  # SMTP login sends ASCII only: told before connecting
        with pytest.raises(ConfigurationError, match="KEHA_SMTP_PASSWORD_FILE.*ASCII"):
            send(alert_settings(), mail)
        assert len(collector.messages) == 1 and len(accepted) == attempts
    finally:
        controller.stop()


def dt_now():
    return dt.datetime.now(dt.timezone.utc)


def test_the_sensors_run_under_the_daemon_by_default():
    defs = build_definitions()
    for name in ("failed_run_alert", "run_findings_alert"):
        sensor = defs.resolve_sensor_def(name)
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING and sensor.minimum_interval_seconds <= 30
    nightly_jobs = {job.name for job in defs.resolve_all_job_defs()} & {"nightly", "nightly_on_workers"}
    assert {job.name for job in MONITORED_JOBS} == nightly_jobs and "nightly" in nightly_jobs


def test_settings_come_from_the_environment_and_bad_values_are_named():
    assert alert_settings({}) is None  # make dev and make run need no SMTP
    assert alert_settings({"KEHA_SMTP_HOST": " "}) is None
    base = {"KEHA_SMTP_HOST": "smtp.example.fi", "KEHA_ALERT_TO": "a@example.fi,  b@example.fi ,"}
    got = alert_settings(base)
    assert (got.port, got.recipients, got.starttls, got.on_nowcast_miss, got.on_file_quarantine) == (
        25, ("a@example.fi", "b@example.fi"), False, False, False)
    assert got.run_link("abc") == "http://localhost:3000/runs/abc"
    assert alert_settings({**base, "KEHA_UI_URL": "https://dagster.example.fi/"}).run_link("abc") == "https://dagster.example.fi/runs/abc"
    assert alert_settings({**base, "KEHA_SMTP_PASSWORD": "p"}).password() == "p"
    for name, value in [("KEHA_SMTP_PORT", "smtp"), ("KEHA_SMTP_PORT", "70000"), ("KEHA_ALERT_TO", " , "),
                        ("KEHA_SMTP_STARTTLS", "kyllä"), ("KEHA_ALERT_NOWCAST_BELOW", "1,5"), ("KEHA_ALERT_NOWCAST_BELOW", "2")]:
        with pytest.raises(ConfigurationError, match=name):
            alert_settings({**base, name: value})
    with pytest.raises(ConfigurationError, match="KEHA_SMTP_PASSWORD_FILE"):
        alert_settings({**base, "KEHA_SMTP_PASSWORD_FILE": "/nonexistent/secret"}).password()


def test_another_librarys_error_is_masked_in_the_reason():
    """A step's error that is not an operator error may quote what it read: masked, one line."""
    try:
        raise ValueError(f"cannot parse row 7:\nH1;{HETU};soita 040 123 4567")
    except ValueError:
        error = serializable_error_info_from_exc_info(sys.exc_info())
    reason = step_reason(error)
    assert reason.startswith("ValueError: cannot parse row 7: H1;") and HETU not in reason and "040 123 4567" not in reason


# --- what a mail shows, for any reason text ---------------------------------------------

REASONS = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=80).map(one_line).filter(bool)


@settings(max_examples=60, deadline=None)
@given(reason=REASONS, name=REASONS, kind=st.sampled_from(["step", "check"]), job=st.sampled_from(["nightly", "nightly_on_workers"]))
def test_any_reason_reads_as_written_in_text_and_escaped_in_html(reason, name, kind, job):
    config = alert_settings({"KEHA_SMTP_HOST": "h", "KEHA_ALERT_TO": "a@example.fi", "KEHA_UI_URL": UI_URL})
    mail = failure_mail(config, run_id="0" * 36, job=job, failed_at=dt_now(),
                        problems=[Problem(kind, name, reason), Problem("check", "quality_section / x", "<b>&amp;</b> ä€")], published=True)
    received = email.message_from_bytes(mail.as_bytes(), policy=email.policy.default)
    what = "ajo epäonnistui" if kind == "step" else "julkaisu estetty"
    assert received["Subject"] == f"{SUBJECT_PREFIX} {what}: {job}, ajo 00000000"
    text = text_of(received)
    label = "Epäonnistunut vaihe" if kind == "step" else "Epäonnistunut tarkistus"
    assert f"{label}: {name}\nSyy: {reason}\n" in text  # non-ASCII intact, nothing escaped
    assert "Syy: <b>&amp;</b> ä€" in text and "Tietovarasto julkaistiin" in text
    markup = html_of(received)
    page = Page(markup)
    assert page.tags.count("li") == 2 and page.tags.count("b") == 1 and page.tags.count("a") == 1  # no tag from a reason
    shown = "".join(page.text)
    assert f"Syy: {reason}" in shown and "Syy: <b>&amp;</b> ä€" in shown
    assert html.escape("<b>&amp;</b>", quote=False) in markup


# --- the optional alerts -----------------------------------------------------------------


@pytest.fixture(scope="module")
def findings_runs(tmp_path_factory):
    """Two successful nightly runs on the bundled sample plus a decisions file quarantined
    whole: the first quarantines it, the second finds nothing new. The running period
    1-12/2022's processing time misses its target (chance under 1 %), satisfaction meets it."""
    root = tmp_path_factory.mktemp("findings")
    landing = Path(shutil.copytree(DEFAULT_LANDING, root / "landing"))
    write_export(landing, D.format("2022-10-15"), DECISION_HEADER, [decision(f"Q{i}", "31.2.2022") for i in range(3)])
    published = root / "wh" / "maksatus.duckdb"
    instance = dg.DagsterInstance.ephemeral()
    cursor = start_cursor(run_findings_alert, instance, published)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KEHA_PSEUDONYM_KEY", "findings-key")
        first, second = run_nightly(landing, published, instance), run_nightly(landing, published, instance)
    assert first.success and second.success
    return instance, published, cursor, first.run_id, second.run_id, landing


def test_optional_alerts_are_off_unless_enabled(findings_runs, smtp):
    instance, published, cursor, first, *_ = findings_runs
    result = tick(run_findings_alert, instance, cursor, published)
    assert "optional alerts are off" in result.skip_message and smtp.messages == []


def test_optional_alerts_mail_what_each_run_found_once(findings_runs, monkeypatch, smtp):
    instance, published, cursor, first, second, landing = findings_runs
    con = duckdb.connect(str(published), read_only=True)
    try:
        chances = dict(con.execute("SELECT indicator, probability_meets_target FROM kpi.forecast").fetchall())
    finally:
        con.close()
    assert chances == {"maksatus_kasittelyaika_pv": 0.0, "maksatus_asiakastyytyvaisyys": 1.0}

    monkeypatch.setenv("KEHA_ALERT_ON_FILE_QUARANTINE", "1")
    both = tick(run_findings_alert, instance, cursor, published)
    [mail] = smtp.messages
    text = text_of(mail)
    assert mail["Subject"] == f"{SUBJECT_PREFIX} tiedosto karanteenissa kokonaan: nightly, ajo {first[:8]}"
    assert f"ajo nightly ({first}) onnistui" in text
    assert f"- {D.format('2022-10-15')}: quarantined" in text
    assert "ennuste" not in text.lower() and f"{UI_URL}/runs/{first}" in text
    assert_no_personal_data(mail, landing)
    # The second run quarantined nothing new: a reaction, no mail.
    assert [reaction.dagster_run.run_id for reaction in both.dagster_run_reactions] == [first, second]

    monkeypatch.setenv("KEHA_ALERT_ON_FILE_QUARANTINE", "0")
    monkeypatch.setenv("KEHA_ALERT_ON_NOWCAST_MISS", "1")
    tick(run_findings_alert, instance, cursor, published)  # from the start again: the first run was told before
    assert len(smtp.messages) == 2
    mail = smtp.messages[1]
    text = text_of(mail)
    assert mail["Subject"] == f"{SUBJECT_PREFIX} tavoite uhkaa jäädä saavuttamatta: nightly, ajo {second[:8]}"
    assert "todennäköisyys alle 50\u00a0%" in text
    assert ("- Maksatuspäätösten ka. käsittelyaika (pv), 1-12/2022 (tilanne 31.10.2022): ennusteen mediaani "
            in text) and "tavoite < 30, todennäköisyys saavuttaa tavoite alle 1\u00a0%" in text
    assert "Asiakastyytyväisyys" not in text and "karanteeni" not in text
    assert instance.get_run_by_id(second).tags[FINDINGS_SENT_TAG] == second
    assert_no_personal_data(mail, landing)
    # Both on, from the start: each run was told once already.
    monkeypatch.setenv("KEHA_ALERT_ON_FILE_QUARANTINE", "1")
    tick(run_findings_alert, instance, cursor, published)
    assert len(smtp.messages) == 2
    # The threshold decides what counts as a miss.
    assert nowcast_misses(published, 0.0) == []
    assert [m.period_label for m in nowcast_misses(published, 1.0)] == ["1-12/2022"]


def test_findings_mail_names_every_miss_and_file():
    config = alert_settings({"KEHA_SMTP_HOST": "h", "KEHA_ALERT_TO": "a@example.fi", "KEHA_ALERT_NOWCAST_BELOW": "0.25"})
    miss = NowcastMiss("Asiakastyytyväisyys <1-5>", "1-6/2026", dt.date(2026, 5, 31), "3,95", "> 4,0", "12\u00a0%")
    mail = findings_mail(config, run_id="1" * 36, job="nightly_on_workers", finished_at=dt.datetime(2026, 3, 29, 1, 30, tzinfo=dt.timezone.utc),
                         nowcast_misses=[miss], quarantined=[Problem("check", "a.csv", "unreadable: not UTF-8")])
    text = text_of(mail)
    assert mail["Subject"] == f"{SUBJECT_PREFIX} tavoite uhkaa jäädä saavuttamatta ja tiedosto karanteenissa kokonaan: nightly_on_workers, ajo 11111111"
    assert "onnistui 29.3.2026 klo 04.30" in text  # Helsinki time, EEST from 01:00 UTC that night
    assert "(todennäköisyys alle 25\u00a0%)" in text
    assert "- Asiakastyytyväisyys <1-5>, 1-6/2026 (tilanne 31.5.2026): ennusteen mediaani 3,95, tavoite > 4,0" in text
    assert "- a.csv: unreadable: not UTF-8" in text
    assert "Asiakastyytyväisyys &lt;1-5&gt;" in html_of(mail)
