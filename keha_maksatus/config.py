"""Settings and targets, read from the `config/` folder (overridable from the environment)."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

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
    offices: tuple[str, ...] = ()
    targets: tuple[Target, ...] = ()


def config_dir() -> Path:
    return Path(os.environ.get(CONFIG_DIR_ENV, REPO_ROOT / "config"))


def load_targets(path: Path) -> tuple[Target, ...]:
    entries = tomllib.loads(path.read_text(encoding="utf-8")).get("target", [])
    targets = []
    for entry in entries:
        target = Target(int(entry["year"]), str(entry["indicator"]), str(entry["op"]), float(entry["value"]))
        if target.indicator not in INDICATORS:
            raise ValueError(f"{path}: unknown indicator '{target.indicator}' (known: {', '.join(INDICATORS)})")
        if target.op not in (">", "<"):
            raise ValueError(f"{path}: target op must be '>' or '<', not '{target.op}'")
        targets.append(target)
    keys = [(t.year, t.indicator) for t in targets]
    if len(keys) != len(set(keys)):
        raise ValueError(f"{path}: more than one target for the same year and indicator")
    return tuple(targets)


def load_settings(directory: Path | None = None) -> Settings:
    directory = directory or config_dir()
    raw = tomllib.loads((directory / "settings.toml").read_text(encoding="utf-8"))

    def number(name: str) -> float:
        return float(os.environ.get(f"KEHA_{name.upper()}", raw[name]))

    return Settings(
        max_rejected_share=number("max_rejected_share"),
        min_data_share=number("min_data_share"),
        landing_quiet_seconds=number("landing_quiet_seconds"),
        offices=tuple(raw.get("offices", ())),
        targets=load_targets(directory / "targets.toml"),
    )
