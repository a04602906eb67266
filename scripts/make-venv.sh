#!/usr/bin/env bash
# The Python environment of the interoperability tests: Debian's python3 with its numpy and
# torch (system site packages), plus safetensors and Pylians3 from PyPI.
set -e
cd "$(dirname "$0")/.."
if [ ! -x build/venv/bin/python ]; then
    mkdir -p build
    /usr/bin/python3 -m venv --system-site-packages build/venv
fi
if ! build/venv/bin/python -c "import safetensors, numpy, torch" 2>/dev/null; then
    build/venv/bin/pip install -q safetensors
fi
if ! build/venv/bin/python -c "import Pk_library" 2>/dev/null; then
    build/venv/bin/pip install -q pylians || echo "warning: pylians did not install"
fi
