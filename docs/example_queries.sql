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

-- What was reported for 1-6/2022 in each publication ("reported on 15.7.2022: 30,1")?
SELECT p.publication_no, p.published_at::DATE AS reported_on, p.as_of, q.indicator,
       round(q.value, CASE q.indicator WHEN 'maksatus_asiakastyytyvaisyys' THEN 2 ELSE 1 END) AS value, q.n, q.complete,
       'reported on ' || strftime(p.published_at, '%-d.%-m.%Y') || ': '
         || replace(printf(CASE q.indicator WHEN 'maksatus_asiakastyytyvaisyys' THEN '%.2f' ELSE '%.1f' END, q.value), '.', ',')
         AS reported
FROM history.quality_section q JOIN history.publication p USING (publication_no)
WHERE q.period_label = '1-6/2022'
ORDER BY q.indicator, p.publication_no;

-- Which files, with their SHA-256, is the newest publication built from?
SELECT p.publication_no, l.file_id, l.file_name, l.content_sha256, l.extract_date, l.rows_valid
FROM (
    SELECT publication_no, unnest(ingested_file_ids) AS file_id FROM history.publication
    WHERE publication_no = (SELECT max(publication_no) FROM history.publication)
) p
JOIN quality.ingest_log l ON l.file_id = p.file_id
ORDER BY l.file_id;

-- Where does an application's current row come from: its source file, the file's SHA-256 and the line?
SELECT d.hakemus_id, l.file_id, l.file_name, l.content_sha256, d.line, l.extract_date
FROM core.decisions d JOIN quality.ingest_log l ON l.file_id = d.file_id
WHERE d.hakemus_id = 'H00000003';

-- Where does a survey response come from: its source file, the file's SHA-256 and the line?
SELECT f.vastaus_id, l.file_id, l.file_name, l.content_sha256, f.line, l.extract_date
FROM core.feedback f JOIN quality.ingest_log l ON l.file_id = f.file_id
WHERE f.vastaus_id = 'V00000001';

-- Which rows, from which files and lines, make up a quality-section figure (processing time 1-6/2022)?
WITH source_rows AS (
    SELECT 'maksatus_kasittelyaika_pv' AS indicator, paatetty AS day, hakemus_id AS row_id,
           kasittelyaika_pv::DOUBLE AS value, file_id, line
    FROM core.decisions WHERE paatetty IS NOT NULL
    UNION ALL
    SELECT 'maksatus_asiakastyytyvaisyys', vastattu::DATE, vastaus_id, arvosana::DOUBLE, file_id, line
    FROM core.feedback
    WHERE palvelu = 'maksatus' AND kysely IN ('kohtaaminen', 'jalkikysely') AND arvosana IS NOT NULL
)
SELECT q.indicator, q.period_label, s.row_id, s.value, l.file_id, l.file_name, l.content_sha256, s.line
FROM kpi.quality_section q
JOIN source_rows s ON s.indicator = q.indicator AND s.day BETWEEN q.period_start AND q.period_end
JOIN quality.ingest_log l ON l.file_id = s.file_id
WHERE q.indicator = 'maksatus_kasittelyaika_pv' AND q.period_label = '1-6/2022'
ORDER BY l.file_id, s.line;

-- Which decisions, from which files and lines, make up a cell of kpi.processing_time_monthly (3/2022, palkkatuki, all offices)?
SELECT m.month, m.tukimuoto, m.yksikko, d.hakemus_id, d.kasittelyaika_pv, l.file_id, l.file_name, l.content_sha256, d.line
FROM kpi.processing_time_monthly m
JOIN core.decisions d ON date_trunc('month', d.paatetty) = m.month
     AND d.tukimuoto = coalesce(m.tukimuoto, d.tukimuoto) AND d.yksikko = coalesce(m.yksikko, d.yksikko)
JOIN quality.ingest_log l ON l.file_id = d.file_id
WHERE m.month = DATE '2022-03-01' AND m.tukimuoto = 'palkkatuki' AND m.yksikko IS NULL
ORDER BY l.file_id, d.line;

-- Every version of an application: what each extract said, the file and line that brought it, the file that replaced it?
SELECT v.hakemus_id, v.saapunut, v.paatetty, v.paatos, v.kasittelyaika_pv,
       b.file_name AS brought_by, b.content_sha256, v.valid_from_line AS line, r.file_name AS replaced_by
FROM history.decisions v
JOIN quality.ingest_log b ON b.file_id = v.valid_from_file_id
LEFT JOIN quality.ingest_log r ON r.file_id = v.replaced_by_file_id
WHERE v.hakemus_id = 'H00000005'
ORDER BY b.name_order, b.file_id;

-- How many applications were pending and decided as the extracts dated up to 30.6.2022 said?
WITH as_of AS (
    SELECT v.*
    FROM history.decisions v JOIN quality.ingest_log l ON l.file_id = v.valid_from_file_id
    WHERE l.status = 'ingested' AND l.extract_date <= DATE '2022-06-30'
    QUALIFY row_number() OVER (PARTITION BY v.hakemus_id ORDER BY l.name_order DESC, v.valid_from_file_id DESC) = 1
)
SELECT count(*) FILTER (paatetty IS NULL) AS pending, count(*) FILTER (paatetty IS NOT NULL) AS decided FROM as_of;

-- Which figures moved at the newest publish, and why: part by part, extract by extract (no part: unchanged)?
SELECT q.indicator, q.period_label, q.complete, c.value_from, q.value AS value_to, c.part, c.file_name, c.items, c.contribution
FROM history.quality_section q
LEFT JOIN history.changes c
       ON c.to_publication_no = q.publication_no AND c.indicator = q.indicator AND c.period_label = q.period_label
WHERE q.publication_no = (SELECT max(publication_no) FROM history.publication)
ORDER BY q.period_start, q.period_end, q.indicator, abs(c.contribution) DESC NULLS LAST;
