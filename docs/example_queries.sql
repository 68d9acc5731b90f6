-- Example questions an analyst asks of the published warehouse (warehouse/maksatus.duckdb).
-- Each query is tested against the sample data (tests/test_example_queries.py).

-- Are we on target? The latest period of both indicators.
SELECT period_label, indicator, round(value, 2) AS value, n, target_op, target, met, complete
FROM kpi.quality_section
QUALIFY row_number() OVER (PARTITION BY indicator ORDER BY period_end DESC) = 1;

-- Which offices miss 30 days this year (the newest year in the data)?
SELECT yksikko, sum(n) AS decisions, round(sum(mean_days * n) / sum(n), 1) AS mean_days,
       round(sum(share_within_30_days * n) / sum(n), 3) AS share_within_30_days
FROM kpi.processing_time_monthly
WHERE tukimuoto IS NULL AND yksikko IS NOT NULL
  AND year(month) = (SELECT max(year(month)) FROM kpi.processing_time_monthly)
GROUP BY yksikko
HAVING sum(mean_days * n) / sum(n) >= 30
ORDER BY mean_days DESC;

-- Which instruments have the most applications pending for over 30 days?
SELECT tukimuoto, sum(n) FILTER (WHERE over_30_days) AS pending_over_30_days, sum(n) AS pending
FROM kpi.backlog
GROUP BY tukimuoto
ORDER BY pending_over_30_days DESC NULLS LAST;

-- How satisfied are customers of each instrument this year (cells under 5 responses withheld)?
SELECT tukimuoto, n, round(mean_score, 2) AS mean_score, round(ci_low, 2) AS ci_low, round(ci_high, 2) AS ci_high
FROM kpi.satisfaction_by_instrument
WHERE year = (SELECT max(year) FROM kpi.satisfaction_by_instrument) AND NOT suppressed
ORDER BY mean_score;

-- Why were rows rejected, file by file?
SELECT file_name, rule, column_name, count(DISTINCT line) AS rows_rejected
FROM quality.quarantine
GROUP BY ALL
ORDER BY file_name, rows_rejected DESC;

-- How much does waiting for the customer's supplement add, by instrument?
SELECT tukimuoto, count(*) AS decisions, round(avg(kasittelyaika_pv), 1) AS mean_days,
       round(avg(netto_kasittelyaika_pv), 1) AS net_mean_days
FROM core.decisions
WHERE paatetty IS NOT NULL
GROUP BY tukimuoto
ORDER BY mean_days DESC;
