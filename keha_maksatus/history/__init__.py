"""History stage: what each publish reported (history.publication, history.quality_section)."""
