"""Outputs: the analysts' DuckDB file published by atomic replace, and what people
read from it (the quality-section report, the exports), every figure under 5 responses
withheld (disclosure)."""
