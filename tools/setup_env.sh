#!/usr/bin/env bash
# Create or update .venv at the repository root with everything mmpoolformer needs.
# The dependencies are pyproject.toml's (the package with its [tests] extra), pinned by
# requirements/constraints.txt, the versions tested together.
# Idempotent: a stamp file records the hash of those two files and the set-up scripts,
# so a second run with nothing changed returns in about a second.
#
# mmcv 2.1.0 (the newest that mmdet 3.3 / mmseg 1.2 accept) has no wheel for torch 2.14,
# so it is built once from its PyPI sdist and the wheel is cached in $MMPOOLFORMER_CACHE
# (default ~/.cache/mmpoolformer), keyed by torch, CUDA (or cpu) and Python version. The build
# has CUDA ops when torch has CUDA, nvcc is found and a GPU is visible (or
# MMPOOLFORMER_FORCE_CUDA=1 with TORCH_CUDA_ARCH_LIST); tools/build_env.py decides.
# CUDA_HOME, CUDA_VISIBLE_DEVICES and PATH (for nvcc) are read.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
CACHE="${MMPOOLFORMER_CACHE:-$HOME/.cache/mmpoolformer}"
REQ="$ROOT/requirements"
STAMP="$VENV/.mmpoolformer-stamp"

BUILD_ENV="$ROOT/tools/build_env.py"

# The machine facts the mmcv build depends on are hashed too (cheaply, without torch), so
# that a venv set up on a login node is checked again on a GPU node.
hash_inputs() {
    { cat "$REQ"/*.txt "$ROOT/pyproject.toml" "${BASH_SOURCE[0]}" "$BUILD_ENV"
      echo "nvcc=$(command -v nvcc || true) gpus=$(echo /dev/nvidia[0-9]*)"
      echo "env=${CUDA_VISIBLE_DEVICES-unset} ${MMPOOLFORMER_FORCE_CUDA-} ${TORCH_CUDA_ARCH_LIST-}"
      echo "cuda_home=${CUDA_HOME-} ${CUDA_PATH-}"
    } | sha256sum | cut -d' ' -f1
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

MMCV_VER="$(sed -n 's/^mmcv==//p' "$REQ/constraints.txt")"
CHOICES="$("$VENV/bin/python" "$BUILD_ENV" choose "$MMCV_VER")"
FORCE_CUDA=0 TORCH_CUDA_ARCH_LIST='' CUDA_HOME_FOUND='' CUDA_INCLUDES='' WHEEL_KEY='' LEGACY_KEY='' REASON=''
while IFS='=' read -r name value; do
    case "$name" in
        FORCE_CUDA | TORCH_CUDA_ARCH_LIST | CUDA_INCLUDES | WHEEL_KEY | LEGACY_KEY | REASON)
            printf -v "$name" '%s' "$value" ;;
        CUDA_HOME) CUDA_HOME_FOUND="$value" ;;
    esac
done <<< "$CHOICES"
WHEEL_DIR="$CACHE/wheels/$WHEEL_KEY"
# CPU wheels cached before the key named cpu/CUDA are CPU wheels (or CUDA ones): fine for CPU.
if [[ -n "$LEGACY_KEY" ]] && ! ls "$WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1 \
        && ls "$CACHE/wheels/$LEGACY_KEY"/mmcv-*.whl >/dev/null 2>&1; then
    WHEEL_DIR="$CACHE/wheels/$LEGACY_KEY"
fi
log "mmcv $MMCV_VER: $REASON; wheel cache $WHEEL_DIR"

if ! "$VENV/bin/python" "$BUILD_ENV" installed "$MMCV_VER" "$FORCE_CUDA" 2>/dev/null; then
    if ! ls "$WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1; then
        log "building mmcv $MMCV_VER ($REASON): about 10-20 minutes with CPU ops on 2 cores," \
            "much longer with CUDA ops"
        BUILD="$(mktemp -d)"
        "${PIP[@]}" download -q --no-deps --no-build-isolation "mmcv==$MMCV_VER" -d "$BUILD"
        tar -xzf "$BUILD/mmcv-$MMCV_VER.tar.gz" -C "$BUILD"
        # torch >= 2.10 headers require C++20; mmcv 2.1.0 hard-codes -std=c++17.
        sed -i 's/-std=c++17/-std=c++20/g' "$BUILD/mmcv-$MMCV_VER/setup.py"
        mkdir -p "$WHEEL_DIR"
        BUILD_VARS=(MMCV_WITH_OPS=1 FORCE_CUDA="$FORCE_CUDA" MAX_JOBS="${MAX_JOBS:-$(nproc)}")
        if [[ "$FORCE_CUDA" == 1 ]]; then
            BUILD_VARS+=(TORCH_CUDA_ARCH_LIST="$TORCH_CUDA_ARCH_LIST" CUDA_HOME="$CUDA_HOME_FOUND"
                         CPATH="$CUDA_INCLUDES${CPATH:+:$CPATH}")
        else  # mmcv's setup.py builds CUDA ops whenever it sees a GPU: hide them
            BUILD_VARS+=(CUDA_VISIBLE_DEVICES=)
        fi
        env "${BUILD_VARS[@]}" \
            "${PIP[@]}" wheel -q --no-deps --no-build-isolation "$BUILD/mmcv-$MMCV_VER" -w "$BUILD/dist"
        mv "$BUILD"/dist/mmcv-*.whl "$WHEEL_DIR/"
        rm -rf "$BUILD"
    fi
    "${PIP[@]}" install -q --no-deps --force-reinstall "$WHEEL_DIR"/mmcv-*.whl
fi

log "installing the package with its [tests] extra (pyproject.toml)"
# The cached wheel (if any: an mmcv that fits may be installed without one), named in
# the same command, keeps pip from building mmcv again for mmdet's requirement.
MMCV_WHEEL=("$WHEEL_DIR"/mmcv-*.whl)
[[ -f "${MMCV_WHEEL[0]}" ]] || MMCV_WHEEL=()
"${PIP[@]}" install -q -c "$REQ/constraints.txt" -e "$ROOT[tests]" "${MMCV_WHEEL[@]}"
# A later install may have moved setuptools past the pkg_resources removal.
"${PIP[@]}" install -q -c "$REQ/constraints.txt" setuptools
"$VENV/bin/python" -c "import mmcv.ops, mmdet, mmseg, mmpretrain, mmpoolformer"

hash_inputs > "$STAMP"
log "ready: $VENV"
