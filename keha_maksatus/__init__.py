"""keha-maksatus: payment-service KPIs of KEHA-keskus from raw exports.

The domain library: reading and validating exports, pseudonymisation, KPI SQL,
publishing and the sample-data generator. It never imports Dagster.
"""
