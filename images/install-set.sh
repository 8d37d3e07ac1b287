#!/bin/sh
# install-set SET: exactly one dependency set of uv.lock (the project's base plus `--extra SET`) into
# /opt/venv, every file checked against the lock's hashes. WHEELHOUSE_URL set: that flat index only.
set -eu
set_name="$1"
set --
if [ -n "${WHEELHOUSE_URL:-}" ]; then set -- --no-index --find-links "$WHEELHOUSE_URL"; fi
/opt/uv/bin/uv export --project /src --frozen --no-dev --no-emit-project --no-header --quiet \
    --extra "$set_name" --output-file /tmp/requirements.txt
/opt/uv/bin/uv venv --quiet --python python3.11 /opt/venv
/opt/uv/bin/uv pip install --python /opt/venv/bin/python --no-deps --require-hashes "$@" \
    --requirement /tmp/requirements.txt
rm -f /tmp/requirements.txt
