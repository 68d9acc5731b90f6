"""The one resource through which assets reach the landing folder and DuckDB."""


from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import dagster as dg
import duckdb
from pydantic import PrivateAttr

from keha_maksatus import state, warehouse
from keha_maksatus.config import Settings, load_settings
from keha_maksatus.ingest.privacy import resolve_key
from keha_maksatus.outputs.publish import OutputFolders

# A run with this tag runs its steps in other processes (workers): they share its run lock.
STEPS_ON_WORKERS_TAG = "keha/steps_on_workers"


class WarehouseResource(dg.ConfigurableResource):
    """Paths of the landing folder and the published DuckDB file. The warehouse's working
    state and output folders are named after the published file (keha_maksatus.state).

    A run holds the warehouse's run lock from its first use of the working state to its
    end, so two runs on one warehouse never overlap (the second waits, bounded). When
    its steps run in other processes (STEPS_ON_WORKERS_TAG), each step holds the lock
    while it works and the run keeps it between its steps (state.RunLock, shared)."""

    landing_dir: str
    warehouse_path: str
    _run_id: str | None = PrivateAttr(default=None)
    _lock: state.RunLock | None = PrivateAttr(default=None)
    _on_workers: bool = PrivateAttr(default=False)
    _instance: dg.DagsterInstance | None = PrivateAttr(default=None)
    _database: duckdb.DuckDBPyConnection | None = PrivateAttr(default=None)

    @property
    def files(self) -> state.WarehouseFiles:
        return state.warehouse_files(self.warehouse_path)

    @property
    def published_path(self) -> Path:
        return self.files.published

    @property
    def work_dir(self) -> Path:
        """The warehouse's working state folder, hidden beside the published file."""
        return self.files.state_dir

    @property
    def working_file(self) -> Path:
        return self.files.working_file

    @property
    def outputs(self) -> OutputFolders:
        return self.files.outputs

    def settings(self) -> Settings:
        return load_settings()

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._run_id = context.run.run_id if context.run else None
        self._on_workers = bool(context.run and context.run.tags.get(STEPS_ON_WORKERS_TAG) == "true")
        self._instance = context.instance

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.close_working()  # before the lock goes: closing may write the file
        if self._lock:
            self._lock.release()
            self._lock = None

    @property
    def on_workers(self) -> bool:
        """The run's steps run in other processes (the run is tagged STEPS_ON_WORKERS_TAG)."""
        return self._on_workers

    def hold_run_lock(self) -> None:
        """Take the warehouse's run lock for the rest of this run, or of this step when the steps
        run on workers (waiting, bounded, for another run or another step of this one)."""
        if self._lock is None:
            lock = state.RunLock(self.files)
            lock.acquire(self.settings().run_lock_wait_seconds, run_id=self._run_id,
                         shared=self._on_workers, run_active=self._run_active)
            self._lock = lock

    def _run_active(self, run_id: str) -> bool | None:
        """Whether the instance knows the run as not finished (None: it does not know it)."""
        run = self._instance.get_run_by_id(run_id) if self._instance else None
        return None if run is None else not run.is_finished

    def prepare_key(self) -> tuple[bytes, bool]:
        """(key, is_demo) for a per-file step: the same key, checked against the state's key
        check alone (no lock, the working file never opened)."""
        key, is_demo = resolve_key(self.landing_dir)
        state.verify_key(self.files, key)
        return key, is_demo

    def pseudonym_key(self) -> tuple[bytes, bool]:
        """(key, is_demo), checked against the key the working state was built with."""
        key, is_demo = resolve_key(self.landing_dir)
        self.hold_run_lock()
        state.claim_key(self.files, key)
        return key, is_demo

    def close_working(self) -> None:
        """Close the run's open working database (connect), so that another database in
        this process may attach the file (the as-of build)."""
        if self._database is not None:
            self._database.close()
            self._database = None

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection to the working file. The steps of a run in one process share the
        open database (each with a connection of its own): opening the file and writing
        its log into it at each close are paid once per run, not once per step."""
        self.hold_run_lock()
        if self._on_workers:
            with warehouse.open_working(self.work_dir) as con:
                yield con
            return
        if self._database is None:
            self._database = warehouse.connect(self.work_dir)
        con = self._database.cursor()
        try:
            yield con
        finally:
            con.close()
