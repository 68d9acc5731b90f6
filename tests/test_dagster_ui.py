"""What an operator sees in the Dagster UI: column descriptions, rounded figures,
check results that say why, described schedule and sensor."""

import os
import time
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from keha_maksatus import kpi, warehouse
from keha_maksatus.config import SATISFACTION
from keha_maksatus.outputs.publish import PUBLICATION_COLUMN_COMMENTS

from pipelines.assets.kpi import target_check_result
from pipelines.definitions import defs
from pipelines.resources import WarehouseResource
from pipelines.sensors import new_exports_sensor

from conftest import DECISION_HEADER, decision, write_export
from test_pipeline import checks, materialize, pseudonym_key, small_landing  # noqa: F401 (the key fixture)


@pytest.fixture
def run(tmp_path: Path, landing: Path) -> dg.ExecuteInProcessResult:
    result = materialize(small_landing(landing), tmp_path / "out" / "maksatus.duckdb")
    assert result.success
    return result


def materialization(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)]
    return event.materialization.metadata


def described_columns(metadata: dict) -> dict[str, str | None]:
    schema = metadata["dagster/column_schema"].value
    return {column.name: column.description for column in schema.columns}


def test_asset_column_schemas_carry_the_column_descriptions(run):
    for asset, table, comments in [
        ("decisions", "core.decisions", warehouse.COLUMN_COMMENTS["core.decisions"]),
        ("feedback", "core.feedback", warehouse.COLUMN_COMMENTS["core.feedback"]),
        ("quality_section", "kpi.quality_section", kpi.COLUMN_COMMENTS["kpi.quality_section"]),
        ("quality_section_details", "kpi.quality_section_details", kpi.COLUMN_COMMENTS["kpi.quality_section_details"]),
    ]:
        columns = described_columns(materialization(run, asset))
        assert columns, asset
        assert columns == {name: comments[name] for name in columns}, asset
    assert described_columns(materialization(run, "quality_section"))["complete"].startswith("False while the period")
    assert "publication_no" in PUBLICATION_COLUMN_COMMENTS


def test_headline_figures_are_rounded_as_the_report_rounds_them(run):
    metadata = materialization(run, "quality_section")
    satisfaction = metadata["satisfaction"].value
    days = metadata["processing_time_days"].value
    assert satisfaction == round(satisfaction, 2) and satisfaction == pytest.approx(26 / 6, abs=0.005)
    assert days == round(days, 1)


def test_target_checks_judge_the_running_period_and_list_closed_ones(tmp_path, landing):
    # 1-6/2022 missed the < 30 day target (60 days); the running 1-12/2022 meets it (18.75 days).
    write_export(landing, "maksatuspaatokset_2022-06-30.csv", DECISION_HEADER,
                 [decision("A1", "1.2.2022", "2.4.2022"), decision("A2", "1.3.2022", "30.4.2022")])
    write_export(landing, "maksatuspaatokset_2022-10-31.csv", DECISION_HEADER,
                 [decision(f"B{i}", f"{i + 1}.9.2022", f"{i + 6}.9.2022") for i in range(6)])
    result = materialize(landing, tmp_path / "out" / "maksatus.duckdb")
    assert result.success
    check = checks(result)["processing_time_meets_target"]
    assert check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.description == (
        "1-12/2022 (running): 18.8 (n = 8), meets the target < 30.0; closed periods that missed their target: 1-6/2022."
    )
    assert check.metadata["period"].value == "1-12/2022" and check.metadata["period_complete"].value is False
    assert check.metadata["closed_periods_missing_target"].value == 1
    assert "| 1\\-6/2022 | True | \\< | 30.00 | 60.00 | 2 | False |" in check.metadata["closed_periods"].value
    satisfaction = checks(result)["satisfaction_meets_target"]
    assert satisfaction.passed and satisfaction.description == "1-12/2022 (running): no value (n = 0), no value to compare with the target."


def test_a_running_period_that_misses_its_target_warns_and_says_so():
    periods = pl.DataFrame(
        {"period_label": ["1-12/2022", "1-6/2022"], "complete": [False, True], "target_op": [">", ">"],
         "target": [4.0, 4.0], "value": [3.876, 4.2], "n": [40, 20], "met": [False, True]}
    )
    result = target_check_result(SATISFACTION, periods)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert result.description == "1-12/2022 (running): 3.88 (n = 40), misses the target > 4.00."
    assert result.metadata["value"].value == 3.88
    no_target = target_check_result(SATISFACTION, periods.with_columns(pl.lit(None).alias("target"), pl.lit(None).alias("met")))
    assert no_target.passed and "no target for this year" in no_target.description


def test_schedule_and_sensor_are_described():
    assert "02:00" in defs.resolve_schedule_def("nightly_at_two").description
    assert "already holds" in defs.resolve_sensor_def("new_exports_sensor").description


def test_sensor_starts_no_run_for_files_already_ingested(tmp_path, landing):
    small_landing(landing)
    old = time.time() - 3600
    for path in landing.iterdir():
        os.utime(path, (old, old))
    published = tmp_path / "out" / "maksatus.duckdb"
    resources = {"warehouse": WarehouseResource(landing_dir=str(landing), warehouse_path=str(published))}
    with dg.build_sensor_context(resources=resources) as context:
        assert isinstance(new_exports_sensor(context), dg.RunRequest)  # nothing ingested yet
    assert materialize(landing, published).success
    with dg.build_sensor_context(resources=resources) as context:  # a fresh cursor: only the ingest log tells
        skipped = new_exports_sensor(context)
        assert isinstance(skipped, dg.SkipReason) and "all ingested already" in skipped.skip_message
    new_file = write_export(landing, "maksatuspaatokset_2023-03-31.csv", DECISION_HEADER, [decision("H7", "1.2.2023")])
    os.utime(new_file, (old, old))
    with dg.build_sensor_context(resources=resources) as context:
        request = new_exports_sensor(context)
        assert isinstance(request, dg.RunRequest) and request.tags["keha/new_files"] == "1"
        assert request.run_key.startswith("maksatuspaatokset_2023-03-31.csv|")


def test_run_summary_says_what_was_new_this_run(tmp_path, landing):
    from test_cli import run_cli

    published = str(tmp_path / "out" / "maksatus.duckdb")
    small_landing(landing)
    first = run_cli("run", "--landing", str(landing), "--warehouse", published, key="summary")
    assert first.returncode == 0, first.stderr
    assert "This run: 3 new files; rows read 13, valid 11, rejected 2." in first.stdout
    write_export(landing, "maksatuspaatokset_2023-03-31.csv", DECISION_HEADER, [decision("H7", "1.2.2023", "10.2.2023")])
    second = run_cli("run", "--landing", str(landing), "--warehouse", published, key="summary")
    assert "This run: 1 new file; rows read 1, valid 1, rejected 0." in second.stdout
    assert "All runs: files in the ingest log 4 (0 not ingested); rows read 14, valid 12, rejected 2" in second.stdout
    third = run_cli("run", "--landing", str(landing), "--warehouse", published, key="summary")
    assert "This run: no new files; rows read 0, valid 0, rejected 0." in third.stdout
