"""The landing folder: which files are exports, their order, dates and content hashes."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path

_DATE_IN_NAME = re.compile(r"_(\d{4}-\d{2}-\d{2})")
# Names that say "still being written" or are not exports at all.
_TEMPORARY = re.compile(r"^(\.|~\$)|\.(part|tmp|crdownload|partial|filepart)$", re.IGNORECASE)


@dataclass(frozen=True)
class LandingFile:
    path: Path
    size: int
    mtime: float
    mtime_ns: int

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def mtime_us(self) -> int:
        """Modification time in whole microseconds, as the ingest log keeps it."""
        return self.mtime_ns // 1000


def list_landing_files(landing_dir: Path) -> list[LandingFile]:
    """Every regular, non-temporary file in the folder, in file-name order."""
    files = []
    for path in sorted(Path(landing_dir).iterdir(), key=lambda p: p.name):
        if path.is_file() and not _TEMPORARY.search(path.name):
            stat = path.stat()
            files.append(LandingFile(path, stat.st_size, stat.st_mtime, stat.st_mtime_ns))
    return files


def stable_files(landing_dir: Path, min_age_seconds: float, now: float | None = None) -> list[LandingFile]:
    """Files not modified for `min_age_seconds`: a file still being written is left for later."""
    now = time.time() if now is None else now
    return [f for f in list_landing_files(landing_dir) if now - f.mtime >= min_age_seconds]


def extract_date(file_name: str, today: dt.date | None = None) -> dt.date:
    """The extract date in the name (`<prefix>_<YYYY-MM-DD>...`), else today."""
    match = _DATE_IN_NAME.search(file_name)
    if match:
        try:
            return dt.date.fromisoformat(match.group(1))
        except ValueError:
            pass
    return today or dt.date.today()


def fingerprint(item: LandingFile) -> tuple[str, int, int]:
    """Name, size and modification time (microseconds): a file whose fingerprint is
    in the ingest log is taken as unchanged and not read again."""
    return item.name, item.size, item.mtime_us


def content_hash(path: Path) -> str:
    """SHA-256 of the file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
