"""Airflow orchestration: the task factory (pods or local processes), schedules, calendar gates,
pipeline_watch and Slack notifications. DAG files in dags/ only assemble these."""
