-- The floor: one DuckDB query over the same CSV files, the two headline KPIs for 1-12 of
-- the year given as $year, latest extract per id, no validation.
WITH decisions AS (
    SELECT strptime(saapunut, '%d.%m.%Y')::DATE AS saapunut, strptime(paatetty, '%d.%m.%Y')::DATE AS paatetty
    FROM read_csv($decision_files, delim = ';', header = true, all_varchar = true, filename = true)
    QUALIFY row_number() OVER (PARTITION BY hakemus_id ORDER BY filename DESC) = 1
), responses AS (
    SELECT kysely, palvelu, strptime(vastattu, '%d.%m.%Y %H:%M') AS vastattu, TRY_CAST(arvosana AS INTEGER) AS score
    FROM read_csv($feedback_files, delim = ';', header = true, all_varchar = true, filename = true)
    QUALIFY row_number() OVER (PARTITION BY vastaus_id ORDER BY filename DESC) = 1
)
SELECT
    (SELECT avg(paatetty - saapunut) FROM decisions WHERE year(paatetty) = $year) AS processing_time,
    (SELECT count(*) FROM decisions WHERE year(paatetty) = $year) AS decisions,
    (SELECT avg(score) FROM responses
      WHERE palvelu = 'maksatus' AND kysely IN ('kohtaaminen', 'jalkikysely') AND year(vastattu) = $year AND score BETWEEN 1 AND 5) AS satisfaction,
    (SELECT count(*) FROM responses
      WHERE palvelu = 'maksatus' AND kysely IN ('kohtaaminen', 'jalkikysely') AND year(vastattu) = $year AND score BETWEEN 1 AND 5) AS responses
