#!/usr/bin/env bash
# Create or update .venv at the repository root with everything mmpoolformer needs.
# The dependencies are pyproject.toml's (the package with its [tests] extra), pinned by
# requirements/constraints.txt, the versions tested together.
# Idempotent: a stamp file records the hash of those two files, the set-up scripts and the
# machine facts the builds depend on, so a second run with nothing changed returns in about
# a second. When only the machine differs (a login node's venv on a GPU node), pip runs only
# for what is missing, so that an offline compute node needs no network.
#
# torch: the PyPI wheel of the pinned torch is a CUDA 13.0 build (NVIDIA driver 580 or
# newer). Where nvidia-smi shows an older driver, torch comes from the PyTorch index that
# TORCH_INDEX_URL names (e.g. https://download.pytorch.org/whl/cu126), or the script stops
# with the one command to run.
# mmcv 2.1.0 (the newest that mmdet 3.3 / mmseg 1.2 accept) has no wheel for torch 2.14,
# so it is built once from its PyPI sdist and the wheel is cached in $MMPOOLFORMER_CACHE
# (default ~/.cache/mmpoolformer), keyed by torch, CUDA and architectures (or cpu) and
# Python version. The build has CUDA ops when torch has CUDA, nvcc is found and a GPU is
# visible (or MMPOOLFORMER_FORCE_CUDA=1 with TORCH_CUDA_ARCH_LIST); tools/build_env.py
# decides. CUDA_HOME, CUDA_VISIBLE_DEVICES, PATH (for nvcc), TORCH_CUDA_ARCH_LIST and
# MAX_JOBS are read.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
CACHE="${MMPOOLFORMER_CACHE:-$HOME/.cache/mmpoolformer}"
REQ="$ROOT/requirements"
STAMP="$VENV/.mmpoolformer-stamp"

BUILD_ENV="$ROOT/tools/build_env.py"

# The machine facts the torch and mmcv choices depend on are hashed too (cheaply, without
# torch), so that a venv set up on a login node is checked again on a GPU node.
hash_inputs() {
    { cat "$REQ"/*.txt "$ROOT/pyproject.toml" "${BASH_SOURCE[0]}" "$BUILD_ENV" \
          "$ROOT/mmpoolformer/utils/gpu.py"
      echo "nvcc=$(command -v nvcc || true) gpus=$(echo /dev/nvidia[0-9]*)"
      cat /proc/driver/nvidia/version 2>/dev/null || true
      echo "env=${CUDA_VISIBLE_DEVICES-unset} ${MMPOOLFORMER_FORCE_CUDA-} ${TORCH_CUDA_ARCH_LIST-}"
      echo "cuda_home=${CUDA_HOME-} ${CUDA_PATH-} torch_index=${TORCH_INDEX_URL-}"
    } | sha256sum | cut -d' ' -f1
}

# tcmalloc, which the launchers preload (tools/malloc.sh): Debian's package, installed when
# it is missing and this user may (root, apt-get); elsewhere the launchers say it is missing.
source "$ROOT/tools/malloc.sh"
if [[ -z "$(tcmalloc_path)" && "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
    echo "[setup_env] installing libtcmalloc-minimal4 (Debian), the launchers' allocator" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
          apt-get install -y -qq libtcmalloc-minimal4; } >/dev/null 2>&1 \
        || echo "[setup_env] could not install libtcmalloc-minimal4 (apt-get failed)" >&2
fi

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(hash_inputs)" ]]; then
    exit 0
fi

log() { echo "[setup_env] $*" >&2; }
minutes() { printf '%d.%d min' $(($1 / 60)) $(($1 % 60 * 10 / 60)); }
# What is missing, one line each, said when it explains why pip runs: not in a venv just
# created, where everything is.
say_missing() {
    if ((FRESH)); then cat >/dev/null; else sed 's/^/[setup_env] missing: /' >&2; fi
}
# Whether the editable install with its [tests] extra is complete (else say what is missing).
project_ready() {
    "${CHECK[@]}" project-ready "$ROOT" "$REQ/constraints.txt" | say_missing || return 1
    local broken
    broken="$("${PIP[@]}" check)" || { echo "$broken" | sed 's/^/[setup_env] /' >&2; return 1; }
}

PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
# pip, without the warning it prints for each package and each local index of a pip
# configuration that has no folder for that package (extra-index-url=file:///opt/pypi/simple
# on some machines): pip goes on to the next index, so it says nothing about this set-up.
# Its other output, errors included, passes; its exit status is pip's (pipefail).
pip_() {
    { "${PIP[@]}" "$@" 2>&1 1>&3 3>&- \
        | sed "/^WARNING: Location 'file:[^']*' is ignored: it is neither a file nor a directory\.\$/d" \
        >&2 3>&-; } 3>&1
}
FRESH=0
if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating $VENV with $("$PY" --version 2>&1)"
    "$PY" -m venv "$VENV"
    pip_ install -q --upgrade pip
    FRESH=1
fi
CHECK=("$VENV/bin/python" "$BUILD_ENV")

# torch first (the mmcv build needs it importable), of a variant the driver runs.
pin() { sed -n "s/^$1==//p" "$REQ/constraints.txt"; }
TORCH_FROM="$("${CHECK[@]}" torch-source "$(pin torch)")"
if [[ "$TORCH_FROM" == index ]]; then
    # torch and torchvision alone from that index; their dependencies, as everything
    # else, from the usual index with the constraints (==2.14.1 admits 2.14.1+cu126).
    log "installing torch $(pin torch) from $TORCH_INDEX_URL"
    pip_ install -q --no-deps --force-reinstall --index-url "$TORCH_INDEX_URL" \
        "torch==$(pin torch)" "torchvision==$(pin torchvision)"
fi
BASE=(torch torchvision setuptools wheel ninja)
if [[ "$TORCH_FROM" == index ]] || ! "${CHECK[@]}" unmet "$REQ/constraints.txt" "${BASE[@]}" \
        | say_missing; then
    log "installing ${BASE[*]} (torch first: the mmcv build needs it)"
    pip_ install -q -c "$REQ/constraints.txt" "${BASE[@]}"
fi
"${CHECK[@]}" torch-source --installed "$(pin torch)" >/dev/null

MMCV_VER="$(pin mmcv)"
CHOICES="$("${CHECK[@]}" choose "$MMCV_VER" "$CACHE/wheels")"
FORCE_CUDA=0 TORCH_CUDA_ARCH_LIST='' CUDA_HOME_FOUND='' CUDA_INCLUDES='' CUDA_VERSION=''
MAX_JOBS='' WHEEL_DIR='' CACHED_WHEEL='' RECORD='' REASON=''
while IFS='=' read -r name value; do
    case "$name" in
        FORCE_CUDA | TORCH_CUDA_ARCH_LIST | CUDA_INCLUDES | CUDA_VERSION | MAX_JOBS \
            | WHEEL_DIR | CACHED_WHEEL | RECORD | REASON)
            printf -v "$name" '%s' "$value" ;;
        CUDA_HOME) CUDA_HOME_FOUND="$value" ;;
    esac
done <<< "$CHOICES"

INSTALLED_WHEEL=()
if "${CHECK[@]}" installed "$MMCV_VER" "$FORCE_CUDA" "$TORCH_CUDA_ARCH_LIST" "$VENV" \
        2>/dev/null; then
    log "mmcv $MMCV_VER ($REASON) is installed"
else
    if [[ -z "$CACHED_WHEEL" ]]; then
        BUILD_START=$SECONDS
        BUILD_LOG="$WHEEL_DIR/build.log"
        log "building mmcv $MMCV_VER ($REASON) into $WHEEL_DIR: the slow step, about" \
            "8-13 minutes with CPU ops on 2 cores, much longer with CUDA ops; its log:" \
            "$BUILD_LOG"
        # The sdist is cached too, so that a compute node without network can build.
        SDIST="$CACHE/sdist/mmcv-$MMCV_VER.tar.gz"
        [[ -f "$SDIST" ]] || pip_ download -q --no-deps --no-build-isolation \
            "mmcv==$MMCV_VER" -d "$CACHE/sdist"
        BUILD="$(mktemp -d)"
        tar -xzf "$SDIST" -C "$BUILD"
        # torch >= 2.10 headers require C++20; mmcv 2.1.0 hard-codes -std=c++17.
        sed -i 's/-std=c++17/-std=c++20/g' "$BUILD/mmcv-$MMCV_VER/setup.py"
        mkdir -p "$WHEEL_DIR"
        BUILD_VARS=(MMCV_WITH_OPS=1 FORCE_CUDA="$FORCE_CUDA" MAX_JOBS="$MAX_JOBS")
        if [[ "$FORCE_CUDA" == 1 ]]; then
            BUILD_VARS+=(TORCH_CUDA_ARCH_LIST="$TORCH_CUDA_ARCH_LIST" CUDA_HOME="$CUDA_HOME_FOUND"
                         CPATH="$CUDA_INCLUDES${CPATH:+:$CPATH}")
        else  # mmcv's setup.py builds CUDA ops whenever it sees a GPU: hide them
            BUILD_VARS+=(CUDA_VISIBLE_DEVICES=)
        fi
        # The build's own output (setuptools' deprecation notices about mmcv's setup.py)
        # goes to its log, whose end is shown if it fails.
        env "${BUILD_VARS[@]}" "${PIP[@]}" wheel -q --no-deps --no-build-isolation \
            "$BUILD/mmcv-$MMCV_VER" -w "$BUILD/dist" >"$BUILD_LOG" 2>&1 || {
            tail -n 30 "$BUILD_LOG" >&2
            log "the mmcv build failed; its whole log: $BUILD_LOG"
            exit 1
        }
        mv "$BUILD"/dist/mmcv-*.whl "$WHEEL_DIR/"
        rm -rf "$BUILD"
        "${CHECK[@]}" record "$WHEEL_DIR/mmcv_build.json" "$CUDA_VERSION" "$TORCH_CUDA_ARCH_LIST"
        CACHED_WHEEL="$(echo "$WHEEL_DIR"/mmcv-*.whl)"
        log "mmcv $MMCV_VER built in $(minutes $((SECONDS - BUILD_START))); later set-ups" \
            "and fresh clones reuse its wheel"
    else
        log "installing mmcv $MMCV_VER ($REASON) from the cached wheel $CACHED_WHEEL"
    fi
    # The architectures go with the wheel (a wheel cached before there were records
    # was built as its cache key says).
    WHEEL_RECORD="$(dirname "$CACHED_WHEEL")/mmcv_build.json"
    [[ -f "$WHEEL_RECORD" ]] \
        || "${CHECK[@]}" record "$WHEEL_RECORD" "$CUDA_VERSION" "$TORCH_CUDA_ARCH_LIST"
    pip_ install -q --no-deps --force-reinstall "$CACHED_WHEEL"
    INSTALLED_WHEEL=("$CACHED_WHEEL")
    mkdir -p "$(dirname "$VENV/$RECORD")"
    cp "$WHEEL_RECORD" "$VENV/$RECORD"
fi

if project_ready; then
    log "the package and its [tests] extra are installed"
else
    log "installing the package with its [tests] extra (pyproject.toml)"
    # The mmcv wheel just installed (if any), named in the same command, keeps pip from
    # building mmcv again for mmdet's requirement.
    # setuptools' "Editable installation" notice (folders named like the package may shadow
    # it) is the only output of a good install: kept out of the set-up's lines.
    PYTHONWARNINGS='ignore:Editable installation' \
        pip_ install -q -c "$REQ/constraints.txt" -e "$ROOT[tests]" "${INSTALLED_WHEEL[@]}"
    # A later install may have moved setuptools past the pkg_resources removal.
    pip_ install -q -c "$REQ/constraints.txt" setuptools
fi
# mmengine and mim look for the package in site-packages (`mmpoolformer::` base configs,
# `mim search`), where an editable install has none: a link to the checkout's.
"${CHECK[@]}" link-package "$ROOT" "$VENV" >/dev/null
"$VENV/bin/python" -c "import mmcv.ops, mmdet, mmseg, mmpretrain, mmpoolformer"

hash_inputs > "$STAMP"
log "ready: $VENV (set-up $(minutes $SECONDS))"
