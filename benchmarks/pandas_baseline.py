"""The baseline a typical analyst would write: pandas over the same Finnish CSV exports,
computing the two headline KPIs for 1-12 of the given year. No validation.

usage: python pandas_baseline.py LANDING YEAR   (prints: processing_time n satisfaction n)
"""

import sys
from pathlib import Path

import pandas as pd


def read_all(landing: Path, prefix: str, dates: list[str]) -> pd.DataFrame:
    frames = []
    for path in sorted(landing.glob(f"{prefix}_*.csv")):
        frame = pd.read_csv(path, sep=";", decimal=",", dtype={"hakemus_id": str, "vastaus_id": str, "arvosana": str})
        for column in dates:
            frame[column] = pd.to_datetime(frame[column], dayfirst=True)
        frame["source"] = path.name
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def main() -> None:
    landing, year = Path(sys.argv[1]), int(sys.argv[2])
    decisions = read_all(landing, "maksatuspaatokset", ["saapunut", "paatetty"])
    decisions = decisions.sort_values("source").drop_duplicates("hakemus_id", keep="last")
    decided = decisions[decisions["paatetty"].dt.year == year]
    days = (decided["paatetty"] - decided["saapunut"]).dt.days

    feedback = read_all(landing, "asiakaspalaute", ["vastattu"])
    feedback = feedback.sort_values("source").drop_duplicates("vastaus_id", keep="last")
    feedback["score"] = pd.to_numeric(feedback["arvosana"], errors="coerce")
    official = feedback[
        (feedback["palvelu"] == "maksatus")
        & feedback["kysely"].isin(["kohtaaminen", "jalkikysely"])
        & (feedback["vastattu"].dt.year == year)
        & feedback["score"].between(1, 5)
    ]
    print(days.mean(), len(days), official["score"].mean(), len(official))


if __name__ == "__main__":
    main()
