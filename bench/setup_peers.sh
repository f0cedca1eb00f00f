#!/usr/bin/env bash
# Creates the private virtualenv that the MLServer peer runs from.
#
# MLServer pins its own versions of FastAPI, uvicorn and friends; keeping it in a
# virtualenv of its own (bench/.venvs/mlserver, gitignored) means the benchmark
# never changes what flaskserve itself is installed with.  The scikit-learn
# version is pinned to the one flaskserve's environment has, so both servers
# load the very same model file with the very same code.
#
# Idempotent: a second run only checks that the environment imports.
#
# Usage: bench/setup_peers.sh [PYTHON]   (PYTHON defaults to the project's .venv)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
python="${1:-$root/.venv/bin/python}"
venv="$here/.venvs/mlserver"

mlserver_version="1.7.1"
# MLServer 1.7.1 fails to start with uvloop 0.22 (its event-loop policy hook changed).
uvloop_pin="uvloop<0.22"

sklearn_version="$("$python" -c 'import sklearn; print(sklearn.__version__)')"
joblib_version="$("$python" -c 'import joblib; print(joblib.__version__)')"

if [[ ! -x "$venv/bin/python" ]]; then
    echo "creating $venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
fi

want="mlserver==$mlserver_version mlserver-sklearn==$mlserver_version scikit-learn==$sklearn_version joblib==$joblib_version"
have_ok=0
if "$venv/bin/python" - "$mlserver_version" "$sklearn_version" <<'PY' 2>/dev/null; then have_ok=1; fi
import sys
from importlib.metadata import version

import mlserver_sklearn  # noqa: F401

assert version("mlserver") == sys.argv[1]
assert version("mlserver-sklearn") == sys.argv[1]
assert version("scikit-learn") == sys.argv[2]
assert int(version("uvloop").split(".")[1]) < 22
PY

if [[ "$have_ok" == 1 ]]; then
    echo "MLServer environment is ready: $venv"
    exit 0
fi

echo "installing $want $uvloop_pin"
# shellcheck disable=SC2086
"$venv/bin/pip" install --quiet $want "$uvloop_pin"
"$venv/bin/mlserver" --help >/dev/null
echo "MLServer environment is ready: $venv"
