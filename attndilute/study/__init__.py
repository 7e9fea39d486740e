"""Cohort-level runs that combine data, models and the instrumentation (ADI, the demo)."""
