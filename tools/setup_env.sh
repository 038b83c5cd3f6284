#!/usr/bin/env bash
# Create or update .venv at the repository root with everything mmpoolformer needs.
# Idempotent: a stamp file records the hash of the requirement files and this script,
# so a second run with nothing changed returns in about a second.
#
# mmcv 2.1.0 (the newest that mmdet 3.3 / mmseg 1.2 accept) has no wheel for torch 2.14,
# so it is built once from its PyPI sdist (with the CPU ops) and the wheel is cached in
# $MMPOOLFORMER_CACHE (default ~/.cache/mmpoolformer), keyed by torch and Python version.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
CACHE="${MMPOOLFORMER_CACHE:-$HOME/.cache/mmpoolformer}"
REQ="$ROOT/requirements"
STAMP="$VENV/.mmpoolformer-stamp"

hash_inputs() {
    cat "$REQ"/*.txt "$ROOT/pyproject.toml" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1
}

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(hash_inputs)" ]]; then
    exit 0
fi

log() { echo "[setup_env] $*" >&2; }

[[ -x "$VENV/bin/python" ]] || { log "creating $VENV"; "$PY" -m venv "$VENV"; }
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade pip
# torch first: the mmcv build needs it importable.
"${PIP[@]}" install -q -c "$REQ/constraints.txt" torch torchvision setuptools wheel ninja

TORCH_VER="$("$VENV/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])')"
PY_VER="$("$VENV/bin/python" -c 'import sys; print(f"py{sys.version_info[0]}{sys.version_info[1]}")')"
MMCV_VER="$(sed -n 's/^mmcv==//p' "$REQ/constraints.txt")"
WHEEL_DIR="$CACHE/wheels/mmcv-$MMCV_VER-torch$TORCH_VER-$PY_VER"

if ! "$VENV/bin/python" -c "import mmcv, mmcv.ops, sys; sys.exit(mmcv.__version__ != '$MMCV_VER')" 2>/dev/null; then
    if ! ls "$WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1; then
        log "building mmcv $MMCV_VER with CPU ops for torch $TORCH_VER (about 10 minutes on 2 cores)"
        BUILD="$(mktemp -d)"
        "${PIP[@]}" download -q --no-deps --no-build-isolation "mmcv==$MMCV_VER" -d "$BUILD"
        tar -xzf "$BUILD/mmcv-$MMCV_VER.tar.gz" -C "$BUILD"
        # torch >= 2.10 headers require C++20; mmcv 2.1.0 hard-codes -std=c++17.
        sed -i 's/-std=c++17/-std=c++20/g' "$BUILD/mmcv-$MMCV_VER/setup.py"
        mkdir -p "$WHEEL_DIR"
        MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
            "${PIP[@]}" wheel -q --no-deps --no-build-isolation "$BUILD/mmcv-$MMCV_VER" -w "$BUILD/dist"
        mv "$BUILD"/dist/mmcv-*.whl "$WHEEL_DIR/"
        rm -rf "$BUILD"
    fi
    "${PIP[@]}" install -q --no-deps "$WHEEL_DIR"/mmcv-*.whl
fi

log "installing runtime and test requirements"
"${PIP[@]}" install -q -c "$REQ/constraints.txt" -r "$REQ/runtime.txt" -r "$REQ/tests.txt" \
    "$WHEEL_DIR"/mmcv-*.whl
"${PIP[@]}" install -q --no-deps --no-build-isolation -e "$ROOT"
# A later install may have moved setuptools past the pkg_resources removal.
"${PIP[@]}" install -q -c "$REQ/constraints.txt" setuptools
"$VENV/bin/python" -c "import mmcv.ops, mmdet, mmseg, mmpretrain, mmpoolformer"

hash_inputs > "$STAMP"
log "ready: $VENV"
