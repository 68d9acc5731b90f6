"""keha-maksatus: payment-service KPIs of KEHA-keskus from raw exports.

The domain library: reading and validating exports, pseudonymisation, KPI SQL,
publishing and the sample-data generator. It never imports Dagster.
"""

import os

# polars allocates and frees gigabytes per export file, and its allocator (jemalloc) by
# default hands freed pages back to the system at once, to fault them in again for the
# next file. Keeping them for five seconds cuts a 10M run's system time by a quarter
# (about 4 % of its wall time) for some 0.4 GB more peak memory; see docs/performance.md.
# Read when polars loads, so it has no effect where polars was imported first; a value
# already in the environment wins.
os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:5000,muzzy_decay_ms:5000")
