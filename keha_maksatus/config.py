"""Settings and targets, read from the `config/` folder (overridable from the environment).

A setting that cannot be used stops the command before anything is written, with one
line naming the file or variable, the value and what it must be (ConfigurationError).
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from keha_maksatus.errors import ConfigurationError

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR_ENV = "KEHA_CONFIG_DIR"
DEFAULT_LANDING = REPO_ROOT / "data" / "sample"
DEFAULT_WAREHOUSE = REPO_ROOT / "warehouse" / "maksatus.duckdb"

SATISFACTION = "maksatus_asiakastyytyvaisyys"
PROCESSING_TIME = "maksatus_kasittelyaika_pv"
INDICATORS = {
    SATISFACTION: "Asiakastyytyväisyys KEHA-keskuksen maksatuksen palveluihin (1-5)",
    PROCESSING_TIME: "Maksatuspäätösten ka. käsittelyaika (pv)",
}


@dataclass(frozen=True)
class Target:
    year: int
    indicator: str
    op: str
    value: float


@dataclass(frozen=True)
class Settings:
    max_rejected_share: float = 0.5
    min_data_share: float = 0.9
    landing_quiet_seconds: float = 60.0
    # How long a run waits for another run on the same warehouse to finish.
    run_lock_wait_seconds: float = 900.0
    # How long the publish waits for a writing connection on the published file to close.
    publish_lock_wait_seconds: float = 120.0
    offices: tuple[str, ...] = ()
    targets: tuple[Target, ...] = ()


# Numeric settings: name -> (lowest, highest, what the value is).
NUMBERS = {
    "max_rejected_share": (0.0, 1.0, "a share between 0 and 1"),
    "min_data_share": (0.0, 1.0, "a share between 0 and 1"),
    "landing_quiet_seconds": (0.0, math.inf, "seconds, 0 or more"),
    "run_lock_wait_seconds": (0.0, math.inf, "seconds, 0 or more"),
    "publish_lock_wait_seconds": (0.0, math.inf, "seconds, 0 or more"),
}
# A plain decimal number: no thousands separators, underscores, nan or infinity.
_DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")


def config_dir() -> Path:
    return Path(os.environ.get(CONFIG_DIR_ENV) or REPO_ROOT / "config")


def env_name(setting: str) -> str:
    return f"KEHA_{setting.upper()}"


def parse_number(setting: str, value: object, source: str) -> float:
    """A numeric setting's value, checked against its range; `source` says where it came from."""
    lowest, highest, meaning = NUMBERS[setting]
    text = str(value).strip() if isinstance(value, (str, int, float)) and not isinstance(value, bool) else None
    if text is None or not _DECIMAL.fullmatch(text):
        hint = " (use a decimal point, e.g. 0.5)" if isinstance(value, str) and "," in value else ""
        raise ConfigurationError(f"setting {setting}: {source} = {value!r} is not a number{hint}; it must be {meaning}")
    number = float(text)
    if not lowest <= number <= highest or math.isinf(number):
        raise ConfigurationError(f"setting {setting}: {source} = {value!r} is out of range; it must be {meaning}")
    return number


def _read_toml(path: Path, what: str) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise ConfigurationError(
            f"cannot read {what} {path}: {reason}; point {CONFIG_DIR_ENV} at the folder holding settings.toml and targets.toml, or unset it"
        ) from error
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigurationError(f"{what} {path} is not valid TOML: {error}; correct the file") from error


def load_targets(path: Path) -> tuple[Target, ...]:
    entries = _read_toml(path, "targets file").get("target", [])
    if not isinstance(entries, list):
        raise ConfigurationError(f"{path}: 'target' must be a list of [[target]] tables; correct the file")
    targets = []
    for number, entry in enumerate(entries, start=1):
        where = f"{path}: [[target]] number {number}"
        if not isinstance(entry, dict):
            raise ConfigurationError(f"{where} is not a table; correct the file")
        missing = [key for key in ("year", "indicator", "op", "value") if key not in entry]
        if missing:
            raise ConfigurationError(f"{where} lacks {', '.join(missing)}; each target needs year, indicator, op and value")
        year, value = entry["year"], entry["value"]
        if not isinstance(year, int) or isinstance(year, bool):
            raise ConfigurationError(f"{where}: year {year!r} is not a whole number; correct the file")
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise ConfigurationError(f"{where}: value {value!r} is not a number; correct the file")
        target = Target(year, str(entry["indicator"]), str(entry["op"]), float(value))
        if target.indicator not in INDICATORS:
            raise ConfigurationError(f"{where}: unknown indicator '{target.indicator}' (known: {', '.join(INDICATORS)})")
        if target.op not in (">", "<"):
            raise ConfigurationError(f"{where}: op must be '>' or '<', not '{target.op}'")
        targets.append(target)
    keys = [(t.year, t.indicator) for t in targets]
    if len(keys) != len(set(keys)):
        raise ConfigurationError(f"{path}: more than one target for the same year and indicator; keep one")
    return tuple(targets)


def load_settings(directory: Path | None = None) -> Settings:
    """Settings from settings.toml, each number overridable by KEHA_<NAME>; a number
    missing from the file takes its default."""
    directory = directory or config_dir()
    path = directory / "settings.toml"
    raw = _read_toml(path, "settings file")
    defaults = {field.name: field.default for field in fields(Settings)}
    numbers = {}
    for name in NUMBERS:
        variable = env_name(name)
        if os.environ.get(variable, "").strip():  # an empty variable counts as unset
            numbers[name] = parse_number(name, os.environ[variable], variable)
        elif name in raw:
            numbers[name] = parse_number(name, raw[name], f"{path}: {name}")
        else:
            numbers[name] = defaults[name]
    offices = raw.get("offices", [])
    if not isinstance(offices, list) or not all(isinstance(code, str) for code in offices):
        raise ConfigurationError(f"setting offices in {path} must be a list of office codes (strings); correct the file")
    return Settings(**numbers, offices=tuple(offices), targets=load_targets(directory / "targets.toml"))
