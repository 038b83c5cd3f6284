# Sourced by the launchers (tools/dist_run.sh, tools/slurm_run.sh, tools/run_main.sh):
# `use_tcmalloc` makes the processes they start run with tcmalloc. On the CPU the real
# tools/train.py loop runs faster with it than with glibc's malloc, which maps and unmaps
# large tensors and page-faults on them every iteration (docs/performance.md has the
# figures). tools/setup_env.sh installs Debian's libtcmalloc-minimal4 where it can.
# MMPOOLFORMER_MALLOC=glibc keeps glibc's malloc.

# The path of libtcmalloc_minimal.so.4 (or libtcmalloc.so.4), or nothing.
tcmalloc_path() {
    local lib
    for lib in /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu /usr/lib64 /usr/lib; do
        for name in libtcmalloc_minimal.so.4 libtcmalloc.so.4; do
            [[ -e "$lib/$name" ]] && { echo "$lib/$name"; return; }
        done
    done
    { ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null || true; } \
        | awk '/libtcmalloc(_minimal)?\.so\.4 /{print $NF; exit}'
}

use_tcmalloc() {
    [[ "${MMPOOLFORMER_MALLOC:-tcmalloc}" == glibc || "${LD_PRELOAD:-}" == *tcmalloc* ]] \
        && return 0
    local lib
    lib="$(tcmalloc_path)"
    if [[ -z "$lib" ]]; then
        echo "[mmpoolformer] tcmalloc not found: running with glibc's malloc, slower to" \
             "train on the CPU (install libtcmalloc-minimal4; MMPOOLFORMER_MALLOC=glibc" \
             "says this is meant)" >&2
        return 0
    fi
    export LD_PRELOAD="$lib${LD_PRELOAD:+:$LD_PRELOAD}"
    # tcmalloc reports each allocation above 1 GiB on stderr; the dense models make some
    export TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD=${TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD:-1099511627776}
}
