"""Connections and variables from stack config, as the program writes them, read by Airflow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from components import chart_values as cv
from components import metadata_db as mdb
from tests.airflow.af_harness import sandbox_env
from tests.chart_support import schema_errors, secrets_by_name, values_of
from tests.harness import run_stack
from tests.secrets_check import plaintext_leaks

CONNECTIONS: dict[str, Any] = {
    "warehouse": {
        "conn_type": "postgres",
        "host": "dw.internal.example.com",
        "login": "etl",
        "password": "TESTSECRET-warehouse-p@ss/word",
        "schema": "analytics",
        "port": 5432,
        "extra": {"sslmode": "require"},
    },
    "data_lake": "aws://?region_name=eu-west-1",
    "partner_api": "https://svc-user:TESTSECRET-api%2Fkey@api.partner.example.com:8443/v2",
}
VARIABLES = {
    "platform_s3_bucket": "acme-data-lake",
    "platform_s3_conn_id": "data_lake",
    "thresholds": {"rows": 1000},
}

PARSE = """
import json, sys
from airflow.models.connection import Connection
from airflow.models.variable import Variable
conns, variables = json.loads(sys.argv[1]), json.loads(sys.argv[2])
out = {"connections": {}, "variables": {}}
for conn_id in conns:
    c = Connection.get_connection_from_secrets(conn_id)
    out["connections"][conn_id] = {
        "conn_type": c.conn_type, "host": c.host, "login": c.login, "password": c.password,
        "schema": c.schema, "port": c.port, "extra": c.extra_dejson,
    }
for key in variables:
    out["variables"][key] = Variable.get(key)
print("RESULT" + json.dumps(out))
"""


def airflow_parse(env: dict[str, str], tmp_path: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", PARSE, json.dumps(list(CONNECTIONS)), json.dumps(list(VARIABLES))],
        env={**sandbox_env(tmp_path, tmp_path / "dags"), **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT"))
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT"))
    return result


def test_connections_and_variables_reach_airflow_as_it_parses_them(tmp_path: Path) -> None:
    run = run_stack(
        "integration",
        set_secrets={"connections": json.dumps(CONNECTIONS), "variables": json.dumps(VARIABLES)},
    )
    values = values_of(run)
    assert schema_errors(values) == []
    secret = secrets_by_name(run)[cv.SECRETS.connections_variables]
    assert secret.has_secret_under("stringData")
    env = secret.inputs["stringData"]
    expected_env = {
        "AIRFLOW_CONN_WAREHOUSE",
        "AIRFLOW_CONN_DATA_LAKE",
        "AIRFLOW_CONN_PARTNER_API",
        "AIRFLOW_VAR_PLATFORM_S3_BUCKET",
        "AIRFLOW_VAR_PLATFORM_S3_CONN_ID",
        "AIRFLOW_VAR_THRESHOLDS",
    }
    assert set(env) == expected_env
    exposed = {e["envName"]: e for e in values["secret"]}
    for name in expected_env:
        assert exposed[name] == {
            "envName": name,
            "secretName": cv.SECRETS.connections_variables,
            "secretKey": name,
        }
    assert "TESTSECRET" not in json.dumps(values)
    assert plaintext_leaks(run) == []

    parsed = airflow_parse(env, tmp_path)
    wh = parsed["connections"]["warehouse"]
    assert wh == {
        **{k: v for k, v in CONNECTIONS["warehouse"].items() if k != "extra"},
        "extra": {"sslmode": "require"},
    }
    assert parsed["connections"]["data_lake"]["conn_type"] == "aws"
    assert parsed["connections"]["data_lake"]["extra"] == {"region_name": "eu-west-1"}
    api = parsed["connections"]["partner_api"]
    assert (api["conn_type"], api["host"], api["port"], api["login"]) == (
        "https",
        "api.partner.example.com",
        8443,
        "svc-user",
    )
    assert api["password"] == "TESTSECRET-api/key"
    assert parsed["variables"] == {
        "platform_s3_bucket": "acme-data-lake",
        "platform_s3_conn_id": "data_lake",
        "thresholds": json.dumps({"rows": 1000}),
    }


def test_without_connections_no_secret_and_no_env(tmp_path: Path) -> None:
    run = run_stack("local")
    assert cv.SECRETS.connections_variables not in secrets_by_name(run)
    assert [e["envName"] for e in values_of(run)["secret"]] == [
        cv.env_name("CONN", cv.LOGS_CONN_ID),
        mdb.ASYNC_CONN_ENV,
    ]
