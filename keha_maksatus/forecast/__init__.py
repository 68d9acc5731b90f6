"""Forecast stage: the year-end nowcast of each indicator, the pending applications that
decide it, and the backtest that proves the intervals are calibrated."""
