"""The airflow-platform CrossGuard policy pack: rules in `rules`, the pack in `__main__`."""
