#!/usr/bin/env bash
# Creates .venv (once) and installs the course and its test tools into it.
# Re-running is cheap: it reinstalls only when a requirements file changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv with $($PY --version)"
    "$PY" -m venv .venv
fi
stamp=.venv/.lessons_installed
want=$(cat requirements.txt requirements-dev.txt pyproject.toml scripts/setup_env.sh | sha256sum | cut -d' ' -f1)
# The course site's browser check (make course, tests/test_site.py) opens it in Debian's Chromium.
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "[setup] installing chromium (Debian package) for the course site's browser check"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "[setup] note: no chromium, so the course site is built but not opened in a browser" \
             "(sudo apt-get install chromium)"
    fi
fi
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "[setup] .venv is up to date"
    exit 0
fi
echo "[setup] installing requirements (the first time downloads torch: several minutes)"
.venv/bin/python -m pip install --upgrade --quiet pip
.venv/bin/python -m pip install --quiet -r requirements-dev.txt
.venv/bin/python -m pip install --quiet --no-deps -e .
# MathJax 2 for the course site (the version nbconvert's templates configure), from the Jupyter project's
# package; --no-deps: the site copies its files, and its server extension's dependencies (jupyter_server,
# and jsonschema's format checkers that add seconds to every `import nbformat`) are not wanted here.
.venv/bin/python -m pip install --quiet --no-deps "jupyter-server-mathjax==0.2.6"
echo "$want" > "$stamp"
echo "[setup] done"
