"""dbt's Snowflake profile: key-pair auth through DBT_ENV_SECRET_ variables, no password exported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from stockpipe.warehouse.dbt_runner import profile_env
from stockpipe.warehouse.settings import WarehouseSettings

DBT_DIR = Path(__file__).resolve().parents[3] / "dbt"

# dbt renders the shipped profile from the environment profile_env() gives it (in a child: dbt's
# invocation context is process-global).
RENDER = """
import json, os, sys
from argparse import Namespace
os.environ.update(json.loads(sys.argv[1]))
from dbt.flags import set_from_args
from dbt_common.context import set_invocation_context
from dbt.config.profile import Profile, read_profile
from dbt.config.renderer import ProfileRenderer
set_from_args(Namespace(), None)
set_invocation_context(os.environ)
profile = Profile.from_raw_profiles(read_profile(sys.argv[2]), "stockpipe", ProfileRenderer({}), "snowflake")
args = profile.credentials.auth_args()
print(json.dumps({"keys": sorted(args), "password": profile.credentials.password,
                  "has_key": bool(args.get("private_key"))}))
"""


def settings(**snowflake: object) -> WarehouseSettings:
    base = {"account": "myorg-acct", "user": "LOADER"}
    return WarehouseSettings.model_validate({"warehouse": {"target": "snowflake", "snowflake": {**base, **snowflake}}})


def test_key_pair_reaches_dbt_as_a_secret_variable_and_no_password_is_exported(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    key_file = tmp_path / "rsa_key.p8"
    key_file.write_bytes(pem)
    env = profile_env(settings(private_key_file=key_file, authenticator="SNOWFLAKE_JWT", password="not-this-one"))
    assert env["DBT_ENV_SECRET_SNOWFLAKE_PRIVATE_KEY_PATH"] == str(key_file)
    assert not any("PASSWORD" in name for name in env)
    assert "not-this-one" not in json.dumps(env)
    # Every secret-bearing variable carries dbt's secret prefix.
    assert [n for n in env if "KEY" in n or "PASSWORD" in n] == ["DBT_ENV_SECRET_SNOWFLAKE_PRIVATE_KEY_PATH"]
    out = subprocess.run(
        [sys.executable, "-c", RENDER, json.dumps(env), str(DBT_DIR)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rendered = json.loads(out.stdout.strip().splitlines()[-1])
    assert rendered["has_key"]
    assert not rendered["password"]
    assert "password" not in rendered["keys"]


def test_a_password_without_a_key_goes_only_into_the_secret_variable() -> None:
    env = profile_env(settings(password="pw-123"))
    assert env["DBT_ENV_SECRET_SNOWFLAKE_PASSWORD"] == "pw-123"
    assert [n for n, v in env.items() if v == "pw-123"] == ["DBT_ENV_SECRET_SNOWFLAKE_PASSWORD"]
