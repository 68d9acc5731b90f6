"""Prepared files staged on disk between the per-file steps and the one merge.

When each landing file is prepared by a step of its own (possibly on another machine),
its valid rows and rejections go to Arrow IPC files in the run's staging folder (in the
warehouse's working state, so shared storage when the steps are on several machines),
and the step hands on a small StagedFile. The merge loads them back in file-name order
and stores them exactly as store.ingest_landing would. Staged rows hold no clear
customer id (prepare_file pseudonymises them) and free text is already masked.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import polars as pl

from keha_maksatus.ingest.store import PreparedFile

_FRAMES = ("valid", "rejections")


@dataclass(frozen=True)
class StagedFile:
    """A prepared entry whose frames wait on disk (`paths`, none when it has no rows to store)."""

    index: int  # place in file-name order
    prepared: PreparedFile  # without its frames
    paths: tuple[Path, ...] = ()


def stage(prepared: PreparedFile, index: int, folder: Path) -> StagedFile:
    """Write the prepared entry's frames into `folder`; the rest travels in the StagedFile."""
    if prepared.result is None:
        return StagedFile(index, prepared)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in _FRAMES:
        path = folder / f"{index:06d}.{name}.arrow"
        temporary = path.with_name(f".{path.name}.tmp")
        getattr(prepared.result, name).write_ipc(temporary, compat_level=pl.CompatLevel.newest())
        temporary.replace(path)
        paths.append(path)
    light = replace(prepared, result=replace(prepared.result, valid=None, rejections=None))
    return StagedFile(index, light, tuple(paths))


def load(staged: StagedFile) -> PreparedFile:
    """The prepared entry as prepare_task returned it."""
    if not staged.paths:
        return staged.prepared
    frames = {name: pl.read_ipc(path) for name, path in zip(_FRAMES, staged.paths)}
    return replace(staged.prepared, result=replace(staged.prepared.result, **frames))


def remove(folder: Path) -> None:
    """The run's staging folder and everything in it, and its parent when no other run's is
    left there (nothing when it is not there)."""
    shutil.rmtree(folder, ignore_errors=True)
    try:
        folder.parent.rmdir()
    except OSError:
        pass  # another run's files wait there, or it was never made
