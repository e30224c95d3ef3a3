"""The post-deploy canary: a Job that runs the smoke DAG through the Airflow REST API.

- `smoke.py` is the script the Job runs (standard library only, mounted from a ConfigMap);
- `report.py` is the one-line report it prints, and how the CLI and the Slack bot read it;
- `job.py` builds the Job, its ConfigMap data and its NetworkPolicy as plain manifests.
"""
