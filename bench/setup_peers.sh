#!/usr/bin/env bash
# Creates the private virtualenvs the peer servers (MLServer, LitServe, BentoML) run from.
#
# Each peer pins its own versions of FastAPI, uvicorn, pydantic and friends; a virtualenv of
# its own per peer, under a cache folder outside the repository, means the benchmark never
# changes what flaskserve itself is installed with and the peers never fight over versions.
# scikit-learn and joblib are pinned to the versions flaskserve's environment has, so every
# server loads the very same model file with the very same code.
#
# A peer whose install fails is skipped with the reason printed; the benchmark leaves it out of
# the line-up and says so in its report. Idempotent: a second run only checks each environment.
#
# Usage: bench/setup_peers.sh [PYTHON]   (PYTHON defaults to the project's .venv)
# The folder is $FLASKSERVE_BENCH_PEERS, or $XDG_CACHE_HOME/flaskserve-bench/peers
# (~/.cache/flaskserve-bench/peers); bench/run.py reads the same variables.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
python="${1:-$root/.venv/bin/python}"
peers="${FLASKSERVE_BENCH_PEERS:-${XDG_CACHE_HOME:-$HOME/.cache}/flaskserve-bench/peers}"

sklearn_version="$("$python" -c 'import sklearn; print(sklearn.__version__)')" || exit 1
joblib_version="$("$python" -c 'import joblib; print(joblib.__version__)')" || exit 1
shared="scikit-learn==$sklearn_version joblib==$joblib_version"

# name | what to install | a Python line that must succeed in the finished environment.
# MLServer 1.7.1 fails to start with uvloop 0.22 (its event-loop policy hook changed).
peer_specs=(
    "mlserver|mlserver==1.7.1 mlserver-sklearn==1.7.1 uvloop<0.22|import mlserver_sklearn"
    "litserve|litserve==0.2.19|import litserve"
    "bentoml|bentoml==1.4.40|import bentoml"
)

ready=()
skipped=()
for spec in "${peer_specs[@]}"; do
    IFS="|" read -r name packages probe <<<"$spec"
    venv="$peers/$name"
    stamp="$venv/.flaskserve-bench-installed"
    want="$packages $shared"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && "$venv/bin/python" -c "$probe" 2>/dev/null; then
        echo "$name: ready in $venv"
        ready+=("$name")
        continue
    fi
    echo "$name: installing $want into $venv"
    log="$(mktemp)"
    # shellcheck disable=SC2086
    if { [[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"; } >"$log" 2>&1 \
        && "$venv/bin/pip" install --quiet $want >>"$log" 2>&1 \
        && "$venv/bin/python" -c "$probe" >>"$log" 2>&1; then
        echo "$want" >"$stamp"
        echo "$name: ready in $venv"
        ready+=("$name")
    else
        echo "$name: skipped, its install failed: $(tail -n 3 "$log" | tr '\n' ' ')"
        skipped+=("$name")
    fi
    rm -f "$log"
done
echo "peers ready: ${ready[*]:-none}${skipped:+; skipped: ${skipped[*]}}"
