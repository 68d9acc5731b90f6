"""A warehouse's own files: where its working state and output folders live, the
pseudonym key its state was built with, and the lock one run holds on it.

For the published file `<dir>/<name>`:

    <dir>/.<name>.work/            the working state: warehouse.duckdb, key.check, run.lock
    <dir>/.<name>.work/staged/     prepared files waiting for the merge (ingest on workers)
    <dir>/<name>.outputs/raportti  the quality-section report
    <dir>/<name>.outputs/dashboards
    <dir>/<name>.outputs/exports

Both folders are named after the whole file name, so two warehouses in one folder
share nothing, whatever their names.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import hmac
import json
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import duckdb

from keha_maksatus.errors import ConfigurationError, KeyMismatchError, RunLockedError
from keha_maksatus.warehouse import WORKING_FILE

KEY_CHECK_FILE = "key.check"
LOCK_FILE = "run.lock"
STAGING_DIR = "staged"
# How long a run whose steps run in other processes keeps the warehouse between two of
# its steps, when nobody can tell whether it is still running (see RunLock).
STEP_GAP_SECONDS = 120.0
# The key check is HMAC-SHA256 of this constant: it tells keys apart, never the key.
_KEY_CHECK_MESSAGE = b"keha-maksatus: pseudonym key check, version 1"
_LOCK_POLL_SECONDS = 0.1


@dataclass(frozen=True)
class OutputFolders:
    """Where the people-facing outputs of one warehouse go."""

    report: Path
    dashboards: Path
    exports: Path


@dataclass(frozen=True)
class WarehouseFiles:
    """Every path that belongs to one published warehouse file."""

    published: Path

    @property
    def state_dir(self) -> Path:
        return self.published.parent / f".{self.published.name}.work"

    @property
    def working_file(self) -> Path:
        return self.state_dir / WORKING_FILE

    @property
    def key_check_file(self) -> Path:
        return self.state_dir / KEY_CHECK_FILE

    @property
    def lock_file(self) -> Path:
        return self.state_dir / LOCK_FILE

    def staging_dir(self, run_id: str) -> Path:
        """Where one run's prepared files wait for the merge."""
        return self.state_dir / STAGING_DIR / run_id

    @property
    def outputs_dir(self) -> Path:
        return self.published.parent / f"{self.published.name}.outputs"

    @property
    def outputs(self) -> OutputFolders:
        base = self.outputs_dir
        return OutputFolders(base / "raportti", base / "dashboards", base / "exports")


def warehouse_files(published_path: Path | str) -> WarehouseFiles:
    """The files of the warehouse published at `published_path` (made absolute)."""
    return WarehouseFiles(Path(os.path.abspath(published_path)))


# --- the pseudonym key ------------------------------------------------------------------


def key_check(key: bytes) -> str:
    return hmac.new(key, _KEY_CHECK_MESSAGE, hashlib.sha256).hexdigest()


def stored_key_check(files: WarehouseFiles) -> str | None:
    try:
        return files.key_check_file.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None


def verify_key(files: WarehouseFiles, key: bytes) -> None:
    """Raise KeyMismatchError when the working state was built with another key. Reads
    only the key check; writes nothing."""
    stored = stored_key_check(files)
    if stored is not None and not hmac.compare_digest(stored, key_check(key)):
        raise KeyMismatchError(
            f"the working state {files.state_dir} of {files.published} was built with another pseudonym key "
            f"than the one in use now (KEHA_PSEUDONYM_KEY, or the demo key for the bundled sample); "
            f"pseudonyms of two keys cannot be mixed. Set the key the state was built with, or rotate the key "
            f"by rebuilding the state: remove {files.state_dir} and run again with every extract in the landing "
            f"folder (README: Rotating the pseudonym key)"
        )


def claim_key(files: WarehouseFiles, key: bytes) -> None:
    """Verify the key against the state, recording its check when the state has none yet.
    Call with the run lock held, before anything is ingested."""
    verify_key(files, key)
    if stored_key_check(files) is not None:
        return
    if ingested_file_count(files):
        raise ConfigurationError(
            f"the working state {files.state_dir} holds ingested data but no record of its pseudonym key "
            f"({KEY_CHECK_FILE} is missing), so a run cannot tell whether the key matches; rebuild the state: "
            f"remove {files.state_dir} and run again with every extract in the landing folder"
        )
    files.state_dir.mkdir(parents=True, exist_ok=True)
    _write_atomically(files.key_check_file, key_check(key) + "\n")


def ingested_file_count(files: WarehouseFiles) -> int:
    """Entries of the working state's ingest log (0 when there is no state). Call with
    the run lock held: it opens the working file (as the run's steps do, so that it may
    while a step of the run in this process holds it open)."""
    if not files.working_file.exists():
        return 0
    con = duckdb.connect(str(files.working_file))
    try:
        exists = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'quality' AND table_name = 'ingest_log'"
        ).fetchall()[0][0]
        return con.execute("SELECT count(*) FROM quality.ingest_log").fetchall()[0][0] if exists else 0
    finally:
        con.close()


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("w", encoding="ascii") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


# --- one run at a time ------------------------------------------------------------------


@dataclass
class _Held:
    fd: int
    depth: int
    details: dict


_held: dict[Path, _Held] = {}
_held_guard = threading.Lock()


class RunLock:
    """An exclusive OS file lock (flock) on the state's run.lock, held for one run.

    The holder writes its PID, start time and Dagster run id into the file, so that a run
    that has to wait can name it. The kernel drops the lock when the holder's process
    ends, however it ends. Re-entrant for the same run id within a process: the command
    line takes the lock for the run it is about to start, and the run's resource takes
    it again; another run, in this process or another, waits.

    A run whose steps run in other processes (workers) takes it `shared`: each of its
    steps holds the flock while it works (so two steps never open the working file at
    once; the second waits, bounded), and between its steps the file keeps the run's
    claim: another run waits while `run_active(run id)` says the run still runs (or, when
    that cannot tell, for STEP_GAP_SECONDS after its last step)."""

    def __init__(self, files: WarehouseFiles) -> None:
        self.files = files
        self.path = files.lock_file
        self._taken = 0  # acquires of this object not yet released

    def acquire(
        self,
        wait_seconds: float,
        run_id: str | None = None,
        on_wait: Callable[[str], None] | None = None,
        shared: bool = False,
        run_active: Callable[[str], bool | None] | None = None,
    ) -> None:
        """Take the lock, waiting up to `wait_seconds` for another run (or another step of
        this one); RunLockedError after that. `on_wait` is told once, with the holder's
        description, when the wait begins."""
        with _held_guard:
            held = _held.get(self.path)
            if held and run_id is not None and held.details["dagster_run_id"] == run_id:
                held.depth += 1
                self._taken += 1
                return
        fd = self._open()
        deadline = time.monotonic() + wait_seconds
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_details(fd)
            else:
                holder = _read_details(fd)
                if not _claimed_by_another_run(holder, run_id, run_active):
                    break
                fcntl.flock(fd, fcntl.LOCK_UN)
            remaining = deadline - time.monotonic()
            if remaining > 0 and on_wait and not told:
                on_wait(describe_holder(holder))
                told = True
            if remaining <= 0:
                os.close(fd)
                if run_id is not None and holder.get("dagster_run_id") == run_id:
                    raise RunLockedError(
                        f"another step of this run holds the working state of {self.files.published}: "
                        f"{describe_holder(holder)}; waited {wait_seconds:g} s (run_lock_wait_seconds). The steps that "
                        f"open the working file take turns: raise KEHA_RUN_LOCK_WAIT_SECONDS"
                    )
                raise RunLockedError(
                    f"another run is working on {self.files.published}: {describe_holder(holder)}; waited {wait_seconds:g} s "
                    f"(run_lock_wait_seconds). Let that run finish and run again, or raise KEHA_RUN_LOCK_WAIT_SECONDS"
                )
            time.sleep(min(_LOCK_POLL_SECONDS, remaining))
        details = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "dagster_run_id": run_id,
            "command": " ".join(sys.argv),
        }
        if shared:
            details["shared"] = True
        _write_details(fd, details)
        with _held_guard:
            _held[self.path] = _Held(fd, 1, details)
        self._taken += 1

    def release(self) -> None:
        if not self._taken:
            return
        self._taken -= 1
        with _held_guard:
            held = _held.get(self.path)
            if not held:
                return
            held.depth -= 1
            if held.depth:
                return
            del _held[self.path]
        if held.details.get("shared") and held.details.get("dagster_run_id"):
            # The run keeps its claim until its next step (see _claimed_by_another_run).
            _write_details(held.fd, {**held.details, "between_steps_since": time.time()})
        else:
            os.ftruncate(held.fd, 0)  # a waiting run names no run that has finished
        fcntl.flock(held.fd, fcntl.LOCK_UN)
        os.close(held.fd)

    def _open(self) -> int:
        try:
            self.files.state_dir.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as error:
            raise ConfigurationError(
                f"cannot create or open the working state {self.files.state_dir}: {error.strerror or error}; "
                f"the warehouse's folder and its working state must be writable by the user running the pipeline"
            ) from error


def _claimed_by_another_run(details: dict, run_id: str | None, run_active: Callable[[str], bool | None] | None) -> bool:
    """Whether a run on workers, between two of its steps, still keeps the warehouse from
    this one. A holder that died without releasing left no claim: the kernel freed it."""
    claimant = details.get("dagster_run_id")
    since = details.get("between_steps_since")
    if since is None or not claimant or claimant == run_id:
        return False
    active = run_active(claimant) if run_active else None
    if active is not None:
        return active
    return time.time() - since < STEP_GAP_SECONDS


def _write_details(fd: int, details: dict) -> None:
    data = (json.dumps(details) + "\n").encode("utf-8")
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


def _read_details(fd: int) -> dict:
    try:
        text = os.pread(fd, 65536, 0).decode("utf-8", errors="replace")
        details = json.loads(text) if text.strip() else {}
        return details if isinstance(details, dict) else {}
    except (OSError, ValueError):
        return {}


def describe_holder(details: dict) -> str:
    """The run holding the lock, in words: PID, host, start time and Dagster run id."""
    if not details.get("pid"):
        return "a run that has not yet written its details (PID unknown)"
    text = f"PID {details['pid']}"
    if details.get("host") and details["host"] != socket.gethostname():
        text += f" on {details['host']}"
    if details.get("started_at"):
        text += f", started {details['started_at']}"
    if details.get("dagster_run_id"):
        text += f", Dagster run {details['dagster_run_id']}"
    if details.get("between_steps_since"):
        text += " (on workers, between two of its steps)"
    return text
