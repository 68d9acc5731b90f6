"""The Dagster layer: assets, checks, resources, schedule and sensor over keha_maksatus."""
