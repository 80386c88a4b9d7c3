#!/usr/bin/env sh
# `pip install .` into a clean environment of its own, as a user installs it: numpy 2 already
# there (and kept), no learn2learn; then a game, a sine MAML and an in-context run, and a report of
# them, from a directory outside the checkout, so that only the installed copy can be imported.
#
#   sh tools/check-install.sh ENV_DIR
#
# ENV_DIR is made with `python3 -m venv` where it holds no environment yet (torch alone is several
# GB, so CI keeps it in its cache, keyed by pyproject.toml); where it does, only the project is
# reinstalled over it.
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
env=${1:?usage: sh tools/check-install.sh ENV_DIR}
if [ ! -x "$env/bin/python" ]; then
    python3 -m venv "$env"
    "$env/bin/pip" install --quiet "numpy>=2"
    "$env/bin/pip" install --quiet "$repo"
else
    "$env/bin/pip" install --quiet --no-deps --force-reinstall "$repo"
fi
py="$env/bin/python"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
"$py" - <<'PY'
import importlib.util

import numpy

import playground

assert int(numpy.__version__.split(".")[0]) >= 2, f"numpy was downgraded to {numpy.__version__}"
assert importlib.util.find_spec("learn2learn") is None, "learn2learn is not a dependency"
assert "site-packages" in playground.__file__, f"not the installed copy: {playground.__file__}"
PY
"$env/bin/playground" run game game=bilinear dynamics=extragradient steps=50 --out runs/game
"$env/bin/playground" run maml task=sine iterations=20 eval_tasks=20 --out runs/maml
"$env/bin/playground" run icl steps=20 batch=64 eval_tasks=64 --out runs/icl
"$env/bin/playground" report runs --out runs/report.html
"$py" -c "import json; v = json.load(open('runs/game/config.json'))['versions']; assert v['playground'] and 'playground_commit' not in v, v"
echo "check-install: installed into $env; game, maml and icl ran from $work"
