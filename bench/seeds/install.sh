#!/usr/bin/env bash
# Installs the seeds' FastAPI stack (bench/seeds/requirements.txt) from PyPI into a
# project-local virtualenv, bench/work/seeds-venv, once.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv="$here/../work/seeds-venv"
if [[ -x "$venv/bin/uvicorn" ]]; then
  exit 0
fi
echo "==> installing the seeds' FastAPI stack into $venv (once)"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
