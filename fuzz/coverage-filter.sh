#!/usr/bin/env bash
# rustc wrapper for the fuzz build (set in fuzz/.cargo/config.toml, so it applies to
# `cargo fuzz` run from fuzz/): compiles the crates named in MAPCORE_FUZZ_UNCOVERED (a comma
# list; the config sets the reference model and checks, `mapcore_tests`) without
# SanitizerCoverage, everything else as cargo-fuzz asks. AddressSanitizer and every other flag
# stay.
#
# Why: the model and the checks are three quarters of the code a fuzz input runs; with
# coverage on them, libFuzzer spends most of each execution collecting their edges and
# comparisons, and steers by the oracle's branches rather than the map's. The map itself is
# instantiated in the fuzz target crate (`run_core` and friends are `#[inline]`, the driver
# calls it through `dyn Subject`), so it stays fully instrumented. See fuzz/README.md.
set -euo pipefail
rustc=$1
shift
name=
prev=
for arg in "$@"; do
  [ "$prev" = --crate-name ] && name=$arg
  prev=$arg
done
uncovered=",${MAPCORE_FUZZ_UNCOVERED-},"
if [ -z "$name" ] || [[ $uncovered != *",$name,"* ]]; then
  exec "$rustc" "$@"
fi
args=()
skip_next=0
for arg in "$@"; do
  if [ $skip_next = 1 ]; then
    skip_next=0
    case $arg in
      passes=sancov-module | llvm-args=-sanitizer-coverage*) continue ;;
      *) args+=(-C "$arg"); continue ;;
    esac
  fi
  case $arg in
    -C) skip_next=1 ;;
    -Cpasses=sancov-module | -Cllvm-args=-sanitizer-coverage*) ;;
    *) args+=("$arg") ;;
  esac
done
exec "$rustc" "${args[@]}"
