"""The nightly job on Celery workers: the same assets as `nightly`, each step a Celery task.

The per-file ingest steps (prepare_landing_file) spread over the workers; the steps that
open the DuckDB working file take turns under the run's shared run lock (the warehouse
resource, STEPS_ON_WORKERS_TAG). Workers need the same code, environment
(KEHA_LANDING_DIR, KEHA_WAREHOUSE, KEHA_PSEUDONYM_KEY) and Dagster instance (DAGSTER_HOME
with run storage every worker reaches) as the process that launches the run, and the
warehouse's folder on storage they all share. README: Running on workers.
"""

from __future__ import annotations

import os

import dagster as dg
from dagster_celery import celery_executor

from pipelines.resources import STEPS_ON_WORKERS_TAG
from pipelines.schedules import nightly_job

BROKER_ENV = "KEHA_CELERY_BROKER"
BACKEND_ENV = "KEHA_CELERY_BACKEND"
DEFAULT_BROKER = "redis://localhost:6379/0"
DEFAULT_BACKEND = "redis://localhost:6379/1"
JOB_NAME = "nightly_on_workers"


def celery_config() -> dict[str, str]:
    """Broker and result backend from the environment (defaults: a local Redis)."""
    return {
        "broker": os.environ.get(BROKER_ENV) or DEFAULT_BROKER,
        "backend": os.environ.get(BACKEND_ENV) or DEFAULT_BACKEND,
    }


def nightly_on_workers_job() -> dg.UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        JOB_NAME,
        selection=nightly_job.selection,
        executor_def=celery_executor.configured(celery_config()),
        tags={STEPS_ON_WORKERS_TAG: "true"},
        description="The nightly job with its steps on Celery workers: each landing file prepared by a worker, one writer merges.",
    )
