#!/usr/bin/env bash
# Installs deeplab_tf and what it needs into the current Python environment.
# TensorFlow: keeps an installed distribution; otherwise installs
# tensorflow[and-cuda] where an NVIDIA driver is present, else tensorflow-cpu.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
if ! "$PY" -c 'import tensorflow' >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1; then
    "$PY" -m pip install --quiet 'tensorflow[and-cuda]==2.21.*'
  else
    "$PY" -m pip install --quiet 'tensorflow-cpu==2.21.*'
  fi
fi
"$PY" -m pip install --quiet -e '.[test]'
