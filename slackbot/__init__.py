"""ChatOps for airflow-platform: a Slack slash command that drives the Pulumi Automation API."""
