"""The landing folder: which entries are exports, their order, dates, logged names and
content hashes.

Only regular files directly in the folder are read. Symbolic links, folders, named pipes,
sockets and device files are listed with the reason they are skipped, from lstat alone:
never followed, never opened (opening a FIFO would wait for a writer).

A name is taken as the bytes it is: os.scandir gives bytes that are not UTF-8 as
surrogate escapes, and `*?[]` are plain characters. Entries are ordered by those bytes
(file-name order). The ingest log shows each name printable (control characters and
bytes that are not UTF-8 as backslash escapes) with personal data masked (logged_name),
and keeps the bytes with the same data masked as the order of extracts (name_order).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from keha_maksatus.ingest.privacy import mask_string

# A real extract date: ASCII digits, a valid day, not the start of a longer number.
_DATE_IN_NAME = re.compile(r"_([0-9]{4}-[0-9]{2}-[0-9]{2})(?![0-9])")
# Names that say "still being written" or are not exports at all (\Z: a trailing newline is part of the name).
_TEMPORARY = re.compile(r"^(\.|~\$)|\.(part|tmp|crdownload|partial|filepart)\Z", re.IGNORECASE)
# os.fsdecode's stand-ins for bytes that are not UTF-8.
_RAW_BYTES = re.compile("([\udc80-\udcff]+)")
_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}

SKIP_REASONS = {
    stat.S_IFLNK: "symbolic link, not followed: only regular files directly in the landing folder are read",
    stat.S_IFDIR: "folder, not read: only regular files directly in the landing folder are read",
    stat.S_IFIFO: "named pipe (FIFO), not opened: only regular files are read",
    stat.S_IFSOCK: "socket, not opened: only regular files are read",
    stat.S_IFCHR: "device file, not opened: only regular files are read",
    stat.S_IFBLK: "device file, not opened: only regular files are read",
}
OTHER_SKIP_REASON = "special file, not opened: only regular files are read"


@dataclass(frozen=True)
class LandingFile:
    """One entry of the landing folder, as lstat saw it. `skip_reason` is set for an
    entry that is not a regular file (nothing else about it is used)."""

    path: Path
    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    logged_name: str  # printable, personal data masked
    name_order: bytes  # the name's bytes with the same data masked: file-name order but where a mask stands
    skip_reason: str | None = None

    @property
    def name(self) -> str:
        """The real name (bytes that are not UTF-8 as surrogate escapes)."""
        return self.path.name

    @property
    def mtime(self) -> float:
        return self.mtime_ns / 1e9

    @property
    def mtime_us(self) -> int:
        """Modification time in whole microseconds, as the ingest log keeps it."""
        return self.mtime_ns // 1000


def scan_landing(landing_dir: Path) -> list[LandingFile]:
    """Every entry of the folder but temporary names, in file-name (byte) order: regular
    files, and everything else with its skip_reason."""
    entries = []
    with os.scandir(landing_dir) as listing:
        for entry in listing:
            if _TEMPORARY.search(entry.name):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed since it was listed
            kind = stat.S_IFMT(info.st_mode)
            skip_reason = None if kind == stat.S_IFREG else SKIP_REASONS.get(kind, OTHER_SKIP_REASON)
            masked = _masked(entry.name)
            entries.append(
                LandingFile(
                    Path(entry.path), info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino,
                    printable(masked), os.fsencode(masked), skip_reason,
                )
            )
    return sorted(entries, key=lambda e: os.fsencode(e.name))


def list_landing_files(landing_dir: Path) -> list[LandingFile]:
    """The regular, non-temporary files of the folder, in file-name order."""
    return [entry for entry in scan_landing(landing_dir) if entry.skip_reason is None]


def stable_files(landing_dir: Path, min_age_seconds: float, now: float | None = None) -> list[LandingFile]:
    """Regular files not modified for `min_age_seconds`: a file still being written is
    left for later."""
    now = time.time() if now is None else now
    return [f for f in list_landing_files(landing_dir) if now - f.mtime >= min_age_seconds]


def extract_date(file_name: str, today: dt.date | None = None) -> dt.date:
    """The first real date `_YYYY-MM-DD` in the name (`<prefix>_<YYYY-MM-DD>...`), else today."""
    for match in _DATE_IN_NAME.finditer(file_name):
        try:
            return dt.date.fromisoformat(match.group(1))
        except ValueError:
            continue
    return today or dt.date.today()


def fingerprint(item: LandingFile) -> tuple[bytes, int, int, int, int]:
    """Name, size, modification time (microseconds), the inode's change time (ns) and the
    inode number: a file whose fingerprint is in the ingest log is taken as unchanged and
    not hashed again. A rewrite in place changes the change time even when the old
    modification time is put back (nothing can set it back), a replacement the inode."""
    return item.name_order, item.size, item.mtime_us, item.ctime_ns, item.inode


def open_regular(path: Path) -> BinaryIO:
    """The file opened for reading, provided it is still a regular file: a link put in
    its place is not followed and a FIFO is not waited on."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    descriptor = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise OSError(0, "no longer a regular file")
    except BaseException:
        os.close(descriptor)
        raise
    return os.fdopen(descriptor, "rb")


def content_hash(path: Path) -> str:
    """SHA-256 of the file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open_regular(path) as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def printable(text: str) -> str:
    """The text on one printable line: backslash, line ends, tabs, control and other
    unprintable characters as Python's backslash escapes, a byte that is not UTF-8
    (a surrogate escape) as `\\xNN`. Different texts stay different."""
    return "".join(_escape(char) for char in text)


def _escape(char: str) -> str:
    if char in _ESCAPES:
        return _ESCAPES[char]
    if char.isprintable():
        return char
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _masked(text: str) -> str:
    """Personal data masked in each run of text between bytes that are not UTF-8 (which
    stay as they are)."""
    parts = _RAW_BYTES.split(text)
    return "".join(part if i % 2 or not part else mask_string(part) for i, part in enumerate(parts))


def log_text(text: str) -> str:
    """Text from the input (a name, a reader's message) as the ingest log keeps it:
    personal data masked, printable."""
    return printable(_masked(text))
