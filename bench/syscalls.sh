#!/usr/bin/env bash
# System calls per operation for every contender in one workload (default W1 4 KiB), by the
# N/2N method: run `mapcore-bench --ops N --only C/W` and `--ops 2N` under
# `strace -f -c` (every system call), subtract, divide by N. Set-up and tear-down (slab
# reservation, first allocator block, ...) happen in both runs and cancel.
#
# usage: bench/syscalls.sh [WORKLOAD] [N]      e.g. bench/syscalls.sh w1-4k 2000
set -euo pipefail
cd "$(dirname "$0")/.."

WORKLOAD="${1:-w1-4k}"
N="${2:-2000}"

if ! command -v strace >/dev/null; then
  echo "strace not found; installing it" >&2
  apt-get install -y strace >/dev/null || { echo "cannot install strace" >&2; exit 1; }
fi
cargo build --release -q -p mapcore-bench
BIN=target/release/mapcore-bench
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

# count CONTENDER OPS: prints "syscall calls" lines for one traced run.
count() {
  strace -f -c -o "$TMP/out" -- "$BIN" --ops "$2" --only "$1/$WORKLOAD" >/dev/null
  awk '$1 ~ /^[0-9]/ && $NF != "total" { print $NF, $4 }' "$TMP/out"
}

printf '%-18s %10s  %s\n' contender "syscalls/op" "per call (N=$N and 2N, workload $WORKLOAD)"
for c in $("$BIN" --list | sed -n 's/^contenders: //p'); do
  if ! count "$c" "$N" >"$TMP/one" 2>/dev/null || ! count "$c" $((2 * N)) >"$TMP/two" 2>/dev/null; then
    printf '%-18s %10s\n' "$c" "not run"
    continue
  fi
  awk -v n="$N" -v c="$c" '
    NR == FNR { one[$1] = $2; next }
    { d = ($2 - one[$1]) / n; if (d != 0) { total += d; parts = parts sprintf(" %s=%.2f", $1, d) } }
    END { if (parts == "") parts = " (none)"; printf "%-18s %10.2f %s\n", c, total, parts }
  ' "$TMP/one" "$TMP/two"
done
