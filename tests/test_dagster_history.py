"""In Dagster: the WARN check closed_period_changed and the explanation on the quality_section
materialization, over the real job run in process three times on real small files."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest

from keha_maksatus.outputs.report import CHANGES_HEADING

from conftest import DECISION_HEADER, decision, write_export
from test_dagster_ui import materialization
from pipelines.definitions import build_definitions
from test_pipeline import checks
from test_report_changes import CORRECTION, decisions_of_june

CHECK = "closed_period_changed"


@pytest.fixture(autouse=True)
def pseudonym_key(monkeypatch):
    monkeypatch.setenv("KEHA_PSEUDONYM_KEY", "dagster-history-test-key")


def run(landing: Path, published: Path) -> dg.ExecuteInProcessResult:
    """The nightly job, as `keha-maksatus run` runs it, in process."""
    job = build_definitions(str(landing), str(published)).resolve_job_def("nightly")
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert result.success
    return result


def test_a_corrected_closed_period_warns_naming_the_file_and_an_unchanged_run_passes(tmp_path):
    landing, published = tmp_path / "landing", tmp_path / "wh" / "maksatus.duckdb"
    decisions_of_june(landing)
    first = run(landing, published)
    assert checks(first)[CHECK].passed  # nothing published before: nothing to compare with
    assert materialization(first, "quality_section")["closed_periods_changed"].value == 0

    write_export(landing, CORRECTION, DECISION_HEADER, [
        decision("A2", "1.3.2022", "11.3.2022", tukimuoto="esr", yksikko="ELY-KES"),
        decision("A3", "1.5.2022", "21.6.2022"),
    ])
    second = run(landing, published)
    check = checks(second)[CHECK]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert CORRECTION in check.description and "1-6/2022" in check.description
    assert "20.0 -> 23.7" in check.description  # (10 + 30) / 2 -> (10 + 10 + 51) / 3
    assert "1-12/2022" not in check.description  # still running: not a closed period
    assert check.metadata["files"].value == CORRECTION

    metadata = materialization(second, "quality_section")
    assert metadata["closed_periods_changed"].value == 1
    parts = metadata["closed_period_change_parts"].value.replace("\\", "")  # markdown escapes out
    lines = [line for line in parts.splitlines() if line.startswith("| 1-6/2022 ")]
    assert lines and all(CORRECTION in line and "maksatus_kasittelyaika_pv" in line and "20.0 -> 23.7" in line for line in lines)
    report = materialization(second, "quality_report")["report"].value.replace("\\", "")
    assert CHANGES_HEADING in report and CORRECTION in report and "1-6/2022" in report

    third = run(landing, published)  # nothing new
    assert checks(third)[CHECK].passed
    assert checks(third)[CHECK].description == "No closed period changed since the last publication."
    third_metadata = materialization(third, "quality_section")
    assert third_metadata["closed_periods_changed"].value == 0 and "closed_period_change_parts" not in third_metadata
    assert "Suljettujen kausien luvut eivät ole muuttuneet edellisestä raportista" in materialization(third, "quality_report")["report"].value
    # The publication history stays on published_warehouse.
    assert materialization(third, "published_warehouse")["publication_no"].value == 3


def test_after_a_publish_that_never_reached_the_file_the_check_and_the_report_agree(tmp_path):
    """The working file recorded publication 2 but the published file stayed at 1 (a
    publish killed before the replace, here the published file put back): the next run
    compares with publication 1, in the check as in the report."""
    landing, published = tmp_path / "landing", tmp_path / "wh" / "maksatus.duckdb"
    decisions_of_june(landing)
    run(landing, published)
    shutil.copy(published, tmp_path / "first.duckdb")
    write_export(landing, CORRECTION, DECISION_HEADER, [decision("A2", "1.3.2022", "11.3.2022", tukimuoto="esr", yksikko="ELY-KES")])
    run(landing, published)
    shutil.copy(tmp_path / "first.duckdb", published)  # publication 2 never reached the file

    again = run(landing, published)
    check = checks(again)[CHECK]
    assert not check.passed and CORRECTION in check.description and "20.0 -> 10.0" in check.description
    assert materialization(again, "quality_section")["closed_periods_changed"].value == 1
    report = materialization(again, "quality_report")["report"].value.replace("\\", "")
    assert CHANGES_HEADING in report and CORRECTION in report
    assert materialization(again, "published_warehouse")["publication_no"].value == 2
