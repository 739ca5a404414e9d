#!/usr/bin/env bash
# End-to-end acceptance of mapcore-executor against the real LLVM 22 clients (llvm-jitlink-22,
# lli-22 and clang-repl-22): checks #0-#17, each described where it runs below.
#
# Every program runs twice: under LLVM's own executor (llvm-jitlink-executor, lli-child-target)
# and under ours; exit code and exact stdout must match each other and the expected values.
# Our runs also write a stats file (MAPCORE_EXECUTOR_STATS) that must show every reservation
# released, no slab left after shutdown, as many EH deregistrations as registrations, and no
# protocol error.
#
# Prints one "PASS name" or "FAIL name: reason" line per check and a final
# "N passed, N failed" line; exits non-zero if any check failed. Every run is under
# `timeout 60`, and a timeout (rc 124) always fails.
#
# `run.sh --aarch64`: the same programs, built with `clang-22 --target=aarch64-linux-gnu -c`,
# linked by the x86-64 llvm-jitlink-22 into our executor built for aarch64 and running under
# qemu-user (`qemu-aarch64 -L /usr/aarch64-linux-gnu`, or $QEMU_AARCH64 and $AARCH64_SYSROOT).
# The reference run of each program is LLVM's own x86-64 executor on the same source built with
# `clang-22 --target=x86_64-linux-gnu -c`: exit code and stdout must match it and the expected
# values, and the stats must be as clean as on x86-64. llvm-jitlink needs no extra flag: it
# takes the target from the executor's Setup message (our executor reports its own triple) and
# checks each object against it. Check #5 does not run there: lli-22 initializes only its host
# target (x86-64), so it cannot compile for an aarch64 executor. Needs qemu-user 8 or newer,
# the aarch64 cross gcc and g++ (for the C library and the C++ headers) and the Rust target
# aarch64-unknown-linux-gnu, all installed by .ci/run.
set -uo pipefail

ARCH=x86_64
case "${1:-}" in
  "") ;;
  --aarch64) ARCH=aarch64 ;;
  *)
    echo "usage: $0 [--aarch64]" >&2
    exit 2
    ;;
esac

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
TIMEOUT=60

PASSED=0
FAILED=0

pass() {
  PASSED=$((PASSED + 1))
  echo "PASS $1"
}

fail() {
  FAILED=$((FAILED + 1))
  echo "FAIL $1: $2"
}

finish() {
  echo "$PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ]
  exit $?
}

# ---- setup ------------------------------------------------------------------------------------

if ! command -v llvm-jitlink-22 >/dev/null 2>&1; then
  echo "llvm-jitlink-22 missing: installing llvm-22" >&2
  if ! { apt-get update && apt-get install -y --no-install-recommends llvm-22; } >&2; then
    fail install "apt-get install llvm-22 failed"
    finish
  fi
fi

if [ "$ARCH" = aarch64 ]; then
  CROSS=aarch64-unknown-linux-gnu
  QEMU_AARCH64=${QEMU_AARCH64:-qemu-aarch64}
  AARCH64_SYSROOT=${AARCH64_SYSROOT:-/usr/aarch64-linux-gnu}
  if ! command -v clang-22 >/dev/null 2>&1; then
    echo "clang-22 missing: installing clang-22" >&2
    if ! { apt-get update && apt-get install -y --no-install-recommends clang-22; } >&2; then
      fail install "apt-get install clang-22 failed"
      finish
    fi
  fi
  for tool in "$QEMU_AARCH64" aarch64-linux-gnu-gcc; do
    command -v "$tool" >/dev/null 2>&1 ||
      { fail setup "$tool missing (bash .ci/run installs it)"; finish; }
  done
  [ -d "$AARCH64_SYSROOT/lib" ] || { fail setup "no aarch64 sysroot at $AARCH64_SYSROOT"; finish; }
  export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER:-aarch64-linux-gnu-gcc}
  BUILD=(cargo build --release --bin mapcore-executor --target "$CROSS")
else
  BUILD=(cargo build --release --bin mapcore-executor)
fi
if ! (cd "$ROOT" && "${BUILD[@]}") >&2; then
  fail build "${BUILD[*]} failed"
  finish
fi
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR=$ROOT/$TARGET_DIR ;; esac
BIN=$(llvm-config-22 --bindir)
UP=$BIN/llvm-jitlink-executor
UP_LLI=$BIN/lli-child-target

W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT

# Our runs link $OURS/NAME.o, LLVM's executor's runs $THEIRS/NAME.o: the same objects on x86-64;
# on aarch64, the same sources built for each side's target.
OURS=$W/ours
THEIRS=$W/theirs
mkdir -p "$OURS" "$THEIRS"
if [ "$ARCH" = aarch64 ]; then
  # llvm-jitlink runs the executor as `EXE filedescs=R,W`: a wrapper that starts it under qemu.
  EXE=$W/mapcore-executor-aarch64
  printf '#!/bin/sh\nexec %s -L %s %s "$@"\n' "$QEMU_AARCH64" "$AARCH64_SYSROOT" \
    "$TARGET_DIR/$CROSS/release/mapcore-executor" >"$EXE"
  chmod +x "$EXE"
else
  EXE=$TARGET_DIR/release/mapcore-executor
  THEIRS=$OURS
fi

compile_to() { # compile_to DIR COMPILER SOURCE [FLAGS...]
  local dir=$1 cc=$2 src=$3
  shift 3
  if ! $cc -c "$@" "$HERE/$src" -o "$dir/${src%.*}.o" 2>"$W/cc.err"; then
    fail "compile $src ($cc)" "$(tr '\n' ' ' <"$W/cc.err")"
    finish
  fi
}
compile() { # compile LANGUAGE SOURCE [FLAGS...]   (LANGUAGE: c or c++)
  local lang=$1
  shift
  if [ "$ARCH" = aarch64 ]; then
    local clang=clang-22
    [ "$lang" = c++ ] && clang=clang++-22
    compile_to "$OURS" "$clang --target=aarch64-linux-gnu" "$@"
    compile_to "$THEIRS" "$clang --target=x86_64-linux-gnu" "$@"
  else
    local cc=gcc
    [ "$lang" = c++ ] && cc=g++
    compile_to "$OURS" "$cc" "$@"
  fi
}
compile c hello.c -O1
compile c a.c -O1
compile c b.c -O1
compile c++ ex.cpp -O1
compile c++ ex_thrower.cpp -O1
compile c crash.c
compile c undef.c
compile c sleeper.c
if [ "$ARCH" = aarch64 ]; then
  # The objects our executor links really are aarch64 (so the code really runs under qemu).
  for o in "$OURS"/*.o; do
    llvm-objdump-22 -f "$o" | grep -q 'file format elf64-littleaarch64' ||
      { fail setup "$o is not an aarch64 object: $(llvm-objdump-22 -f "$o" | tr '\n' ' ')"; finish; }
  done
fi

J=(llvm-jitlink-22 --debugger-support=false)

# The MDWE launcher, and executors wrapped in it (llvm-jitlink appends filedescs=R,W).
if ! gcc -O1 -o "$W/mdwe_exec" "$HERE/mdwe_exec.c" 2>"$W/cc.err"; then
  fail "compile mdwe_exec.c" "$(tr '\n' ' ' <"$W/cc.err")"
  finish
fi
printf '#!/bin/sh\nexec "%s" "%s" "$@"\n' "$W/mdwe_exec" "$EXE" >"$W/ours-under-mdwe"
printf '#!/bin/sh\nexec "%s" "%s" "$@"\n' "$W/mdwe_exec" "$UP" >"$W/up-under-mdwe"
chmod +x "$W/ours-under-mdwe" "$W/up-under-mdwe"

# ---- helpers ----------------------------------------------------------------------------------

# run NAME CMD...: runs CMD under timeout with its own stats file; leaves NAME.{out,err,rc,stats}.
# CMD reads the file $STDIN (default /dev/null).
run() {
  local name=$1
  shift
  rm -f "$W/$name.stats"
  MAPCORE_EXECUTOR_STATS="$W/$name.stats" timeout "$TIMEOUT" "$@" \
    >"$W/$name.out" 2>"$W/$name.err" <"${STDIN:-/dev/null}"
  echo $? >"$W/$name.rc"
}

rc() { cat "$W/$1.rc"; }

# stat RUN KEY: a value from RUN's stats file, or "missing".
stat() {
  local v
  v=$(grep -m1 "^$2=" "$W/$1.stats" 2>/dev/null | cut -d= -f2-)
  echo "${v:-missing}"
}

# Each expect_* prints a reason and returns 1 on mismatch.
expect_rc() { # RUN RC
  local got
  got=$(rc "$1")
  [ "$got" = "$2" ] || { echo "exit code $got, wanted $2 (stderr: $(head -c 300 "$W/$1.err" | tr '\n' ' '))"; return 1; }
}

expect_stdout() { # RUN TEXT
  [ "$(cat "$W/$1.out")" = "$2" ] || { echo "stdout $(head -c 200 "$W/$1.out" | tr '\n' '|'), wanted $(printf '%s' "$2" | tr '\n' '|')"; return 1; }
}

same_as() { # OURS THEIRS: identical exit code and stdout bytes
  [ "$(rc "$1")" = "$(rc "$2")" ] || { echo "exit code $(rc "$1") but LLVM's executor gave $(rc "$2")"; return 1; }
  cmp -s "$W/$1.out" "$W/$2.out" || { echo "stdout differs from LLVM's executor: $(diff "$W/$2.out" "$W/$1.out" | head -5 | tr '\n' '|')"; return 1; }
}

expect_stat() { # RUN KEY OP VALUE   (OP: -eq -ge -ne ...)
  local v
  v=$(stat "$1" "$2")
  [ "$v" != missing ] && [ "$v" "$3" "$4" ] || { echo "stats: $2=$v, wanted $3 $4"; return 1; }
}

# Nothing leaked and nothing went wrong on the wire.
expect_clean_stats() { # RUN
  [ -s "$W/$1.stats" ] || { echo "no stats file"; return 1; }
  expect_stat "$1" live_slabs_after_shutdown -eq 0 &&
    expect_stat "$1" shutdown_failed -eq 0 &&
    expect_stat "$1" protocol_errors -eq 0 &&
    expect_stat "$1" eh_register -eq "$(stat "$1" eh_deregister)" &&
    expect_stat "$1" eh_frames_registered_after_shutdown -eq 0 &&
    expect_stat "$1" debug_register -eq "$(stat "$1" debug_deregister)" &&
    expect_stat "$1" debug_objects_registered_after_shutdown -eq 0 &&
    expect_stat "$1" slabs_reserved -eq $(($(stat "$1" slabs_released) + $(stat "$1" slabs_released_at_shutdown))) &&
    { [ "$(stat "$1" session_end)" = eof ] || { echo "session_end=$(stat "$1" session_end)"; return 1; }; }
}

# What our runs are, after each check's name (from #1 on; #0 runs LLVM's executor alone).
ON=""

# check NAME STEP...: runs each step (a shell command string) until one fails.
check() {
  local name=$1$ON why
  shift
  for step in "$@"; do
    if ! why=$(eval "$step"); then
      fail "$name" "$why"
      return
    fi
  done
  pass "$name"
}

# ---- checks -----------------------------------------------------------------------------------

HELLO='hello from jit, argc=2'
AB='msg=rodata-ok counter=42 sum=55 argc=1 sorted=123579'
EX=$'caught boom\ncaught far across objects'

# #0: the environment itself: LLVM's executor runs hello.o.
run up-hello "${J[@]}" --oop-executor="$UP" "$THEIRS/hello.o" --args a b
check "#0 upstream executor self-check (hello.o)" \
  'expect_rc up-hello 42' "expect_stdout up-hello '$HELLO'"
[ "$ARCH" = aarch64 ] && ON=" [aarch64 executor under qemu-user]"

# #1, #2: hello.o under ours, with each memory manager.
run ours-hello-generic "${J[@]}" --oop-executor="$EXE" "$OURS/hello.o" --args a b
check "#1 hello.o, --use-memmgr=generic" \
  'expect_rc ours-hello-generic 42' "expect_stdout ours-hello-generic '$HELLO'" \
  'same_as ours-hello-generic up-hello' 'expect_clean_stats ours-hello-generic' \
  'expect_stat ours-hello-generic reserve_calls -ge 1' \
  'expect_stat ours-hello-generic initialize_calls -ge 1' \
  'expect_stat ours-hello-generic release_calls -ge 1' \
  'expect_stat ours-hello-generic slabs_released -ge 1'

run up-hello-simple "${J[@]}" --oop-executor="$UP" --use-memmgr=simple-remote "$THEIRS/hello.o" --args a b
run ours-hello-simple "${J[@]}" --oop-executor="$EXE" --use-memmgr=simple-remote "$OURS/hello.o" --args a b
check "#2 hello.o, --use-memmgr=simple-remote" \
  'expect_rc ours-hello-simple 42' "expect_stdout ours-hello-simple '$HELLO'" \
  'same_as ours-hello-simple up-hello-simple' 'expect_clean_stats ours-hello-simple' \
  'expect_stat ours-hello-simple reserve_calls -eq 1' \
  'expect_stat ours-hello-simple reserve_bytes -eq 1073741824' \
  'expect_stat ours-hello-simple initialize_calls -ge 1' \
  'expect_stat ours-hello-simple deinitialize_calls -ge 1' \
  'expect_stat ours-hello-simple slabs_released_at_shutdown -eq 1'

# #3: two objects, an 8 MiB zero-fill section, qsort calling a JIT'd comparator.
for mm in generic simple-remote; do
  run "up-ab-$mm" "${J[@]}" --oop-executor="$UP" --use-memmgr=$mm "$THEIRS/a.o" "$THEIRS/b.o" --args x
  run "ours-ab-$mm" "${J[@]}" --oop-executor="$EXE" --use-memmgr=$mm "$OURS/a.o" "$OURS/b.o" --args x
  check "#3 a.o + b.o (8 MiB bss, qsort callback), --use-memmgr=$mm" \
    "expect_rc ours-ab-$mm 0" "expect_stdout ours-ab-$mm '$AB'" \
    "same_as ours-ab-$mm up-ab-$mm" "expect_clean_stats ours-ab-$mm" \
    "expect_stat ours-ab-$mm reserve_bytes -ge $((8 << 20))"
done

# #4: C++ exceptions within and across JIT'd objects: needs the EH-frame finalize actions.
for mm in generic simple-remote; do
  run "up-ex-$mm" "${J[@]}" --oop-executor="$UP" --use-memmgr=$mm --preload=libstdc++.so.6 "$THEIRS/ex.o" "$THEIRS/ex_thrower.o"
  run "ours-ex-$mm" "${J[@]}" --oop-executor="$EXE" --use-memmgr=$mm --preload=libstdc++.so.6 "$OURS/ex.o" "$OURS/ex_thrower.o"
  check "#4 C++ exceptions (ex.o + ex_thrower.o), --use-memmgr=$mm" \
    "expect_rc ours-ex-$mm 7" "expect_stdout ours-ex-$mm '$EX'" \
    "same_as ours-ex-$mm up-ex-$mm" "expect_clean_stats ours-ex-$mm" \
    "expect_stat ours-ex-$mm eh_register -ge 2"
done

# #5: lli remote MCJIT (two bare descriptor arguments, the reserve(0) quirk, a zero-size
# segment at the slab end). stderr must be exactly lli's one warning line.
if [ "$ARCH" = aarch64 ]; then
  echo "NOT RUN #5 lli --remote-mcjit$ON: lli-22 compiles only for its host (x86-64)"
else
  LLI=(lli-22 --jit-kind=mcjit --remote-mcjit)
  HELLO_LL=$HERE/hello.ll
  run up-lli "${LLI[@]}" --mcjit-remote-process="$UP_LLI" "$HELLO_LL"
  run ours-lli "${LLI[@]}" --mcjit-remote-process="$EXE" "$HELLO_LL"
  expect_lli_stderr() {
    local want="lli-22: warning: remote mcjit does not support lazy compilation"
    [ "$(cat "$W/ours-lli.err")" = "$want" ] && [ "$(wc -l <"$W/ours-lli.err")" -eq 1 ] ||
      { echo "stderr is not exactly lli's warning: $(tr '\n' '|' <"$W/ours-lli.err")"; return 1; }
  }
  check "#5 lli --remote-mcjit (hello.ll)" \
    'expect_rc ours-lli 42' "expect_stdout ours-lli 'hello from lli'" \
    'same_as ours-lli up-lli' 'expect_lli_stderr' 'expect_clean_stats ours-lli' \
    'expect_stat ours-lli segments_initialized -ge 3'
fi

# #6: JIT'd code crashes: the controller reports it and does not hang.
expect_crash_rc() { # RUN
  local got
  got=$(rc "$1")
  [ "$got" != 0 ] && [ "$got" != 124 ] || { echo "exit code $got, wanted a failure other than a timeout"; return 1; }
}
for mm in generic simple-remote; do
  run "up-crash-$mm" "${J[@]}" --oop-executor="$UP" --use-memmgr=$mm "$THEIRS/crash.o"
  run "ours-crash-$mm" "${J[@]}" --oop-executor="$EXE" --use-memmgr=$mm "$OURS/crash.o"
  check "#6 crashing program, --use-memmgr=$mm" \
    "expect_crash_rc ours-crash-$mm" "same_as ours-crash-$mm up-crash-$mm"
done

# #7: an undefined symbol: link failure reported, the reservation released.
expect_err() { # RUN TEXT
  grep -qF -- "$2" "$W/$1.err" || { echo "stderr lacks '$2': $(head -c 300 "$W/$1.err" | tr '\n' '|')"; return 1; }
}
for mm in generic simple-remote; do
  run "up-undef-$mm" "${J[@]}" --oop-executor="$UP" --use-memmgr=$mm "$THEIRS/undef.o"
  run "ours-undef-$mm" "${J[@]}" --oop-executor="$EXE" --use-memmgr=$mm "$OURS/undef.o"
  check "#7 undefined symbol, --use-memmgr=$mm" \
    "expect_rc ours-undef-$mm 1" "expect_err ours-undef-$mm 'Symbols not found: [ nope ]'" \
    "same_as ours-undef-$mm up-undef-$mm" "expect_clean_stats ours-undef-$mm" \
    "expect_stat ours-undef-$mm slabs_reserved -ge 1"
done

# #8: debugger support left on (the default): a warning is allowed, nothing else changes.
for mm in generic simple-remote; do
  run "up-dbg-$mm" llvm-jitlink-22 --oop-executor="$UP" --use-memmgr=$mm "$THEIRS/hello.o" --args a b
  run "ours-dbg-$mm" llvm-jitlink-22 --oop-executor="$EXE" --use-memmgr=$mm "$OURS/hello.o" --args a b
  check "#8 debugger support on, --use-memmgr=$mm" \
    "expect_rc ours-dbg-$mm 42" "expect_stdout ours-dbg-$mm '$HELLO'" \
    "same_as ours-dbg-$mm up-dbg-$mm" "expect_clean_stats ours-dbg-$mm"
done

# #9: under memory-deny-write-execute (PR_SET_MDWE, set by a launcher and kept across exec),
# where no mapping may gain execute permission: ours detects it and runs dual-mapped, with no
# flag, and gives the same results as LLVM's executor without MDWE. (LLVM's executor itself
# fails under MDWE; printed below, not checked.)
if [ "$ARCH" = aarch64 ]; then
  echo "NOT RUN #9 under MDWE$ON: qemu-user refuses PR_SET_MDWE (it checks page protections itself)"
else
  run up-hello-mdwe "${J[@]}" --oop-executor="$W/up-under-mdwe" "$THEIRS/hello.o" --args a b
  echo "NOTE LLVM's executor under MDWE: exit code $(rc up-hello-mdwe), stderr: $(head -c 200 "$W/up-hello-mdwe.err" | tr '\n' ' ')"
  for mm in generic simple-remote; do
    run "ours-hello-mdwe-$mm" "${J[@]}" --oop-executor="$W/ours-under-mdwe" --use-memmgr=$mm "$OURS/hello.o" --args a b
    run "ours-ab-mdwe-$mm" "${J[@]}" --oop-executor="$W/ours-under-mdwe" --use-memmgr=$mm "$OURS/a.o" "$OURS/b.o" --args x
    run "ours-ex-mdwe-$mm" "${J[@]}" --oop-executor="$W/ours-under-mdwe" --use-memmgr=$mm --preload=libstdc++.so.6 "$OURS/ex.o" "$OURS/ex_thrower.o"
    check "#9 under MDWE: hello.o, a.o + b.o, C++ exceptions, --use-memmgr=$mm" \
      "expect_rc ours-hello-mdwe-$mm 42" "expect_stdout ours-hello-mdwe-$mm '$HELLO'" \
      "expect_clean_stats ours-hello-mdwe-$mm" \
      "[ \"\$(stat ours-hello-mdwe-$mm wx_mode)\" = dual-mapped ] || { echo \"wx_mode=\$(stat ours-hello-mdwe-$mm wx_mode)\"; false; }" \
      "expect_rc ours-ab-mdwe-$mm 0" "expect_stdout ours-ab-mdwe-$mm '$AB'" \
      "same_as ours-ab-mdwe-$mm up-ab-$mm" "expect_clean_stats ours-ab-mdwe-$mm" \
      "expect_rc ours-ex-mdwe-$mm 7" "expect_stdout ours-ex-mdwe-$mm '$EX'" \
      "same_as ours-ex-mdwe-$mm up-ex-$mm" "expect_clean_stats ours-ex-mdwe-$mm"
  done

fi

# #10: the flip host, forced (MAPCORE_EXECUTOR_WX=flip): the other runs use the mode the
# executor detects, dual-mapped on kernels that let memory files be executable.
for mm in generic simple-remote; do
  MAPCORE_EXECUTOR_WX=flip run "ours-ab-flip-$mm" "${J[@]}" --oop-executor="$EXE" --use-memmgr=$mm "$OURS/a.o" "$OURS/b.o" --args x
  MAPCORE_EXECUTOR_WX=flip run "ours-ex-flip-$mm" "${J[@]}" --oop-executor="$EXE" --use-memmgr=$mm --preload=libstdc++.so.6 "$OURS/ex.o" "$OURS/ex_thrower.o"
  check "#10 flip host: a.o + b.o, C++ exceptions, --use-memmgr=$mm$ON" \
    "[ \"\$(stat ours-ab-flip-$mm wx_mode)\" = flip ] || { echo \"wx_mode=\$(stat ours-ab-flip-$mm wx_mode)\"; false; }" \
    "same_as ours-ab-flip-$mm up-ab-$mm" "expect_clean_stats ours-ab-flip-$mm" \
    "same_as ours-ex-flip-$mm up-ex-$mm" "expect_clean_stats ours-ex-flip-$mm"
done

# #15: LLVM's shared-memory mapper (--use-memmgr=shared): the controller writes the contents
# through a named POSIX shared-memory object the executor creates. Every llvm-jitlink program
# above, compared with LLVM's executor in the same mode; the stats must show the service (not
# the memory manager) did the work, and /dev/shm must hold nothing new after each run.
shm_list() { ls -1 /dev/shm 2>/dev/null | sort; }
# run_shm NAME CMD...: `run`, with the /dev/shm entries before and after.
run_shm() {
  shm_list >"$W/$1.shm-before"
  run "$@"
  shm_list >"$W/$1.shm-after"
}
expect_no_new_shm() { # RUN
  local new
  new=$(comm -13 "$W/$1.shm-before" "$W/$1.shm-after" | tr '\n' ' ')
  [ -z "$new" ] || { echo "left in /dev/shm: $new"; return 1; }
}
expect_shm_service() { # RUN: the shared-memory service reserved and released, the memory manager idle
  expect_stat "$1" shm_reserve_calls -ge 1 && expect_stat "$1" shm_initialize_calls -ge 1 &&
    expect_stat "$1" error_replies -eq 0 &&
    expect_stat "$1" reserve_calls -eq 0 && expect_stat "$1" shm_live_slabs_after_shutdown -eq 0 &&
    expect_stat "$1" shm_shutdown_failed -eq 0 &&
    expect_stat "$1" shm_slabs_reserved -eq $(($(stat "$1" shm_slabs_released) + $(stat "$1" shm_slabs_released_at_shutdown)))
}
# The failed link deinitializes the allocation it abandons: LLVM's executor says nothing, nor
# may ours.
expect_same_stderr() { # OURS THEIRS
  cmp -s "$W/$1.err" "$W/$2.err" || { echo "stderr differs from LLVM's executor: $(diff "$W/$2.err" "$W/$1.err" | head -5 | tr '\n' '|')"; return 1; }
}
SHM=(--use-memmgr=shared)
run up-hello-shm "${J[@]}" --oop-executor="$UP" "${SHM[@]}" "$THEIRS/hello.o" --args a b
run_shm ours-hello-shm "${J[@]}" --oop-executor="$EXE" "${SHM[@]}" "$OURS/hello.o" --args a b
check "#15 hello.o, --use-memmgr=shared" \
  'expect_rc ours-hello-shm 42' "expect_stdout ours-hello-shm '$HELLO'" \
  'same_as ours-hello-shm up-hello-shm' 'expect_clean_stats ours-hello-shm' \
  'expect_shm_service ours-hello-shm' 'expect_no_new_shm ours-hello-shm'
run up-ab-shm "${J[@]}" --oop-executor="$UP" "${SHM[@]}" "$THEIRS/a.o" "$THEIRS/b.o" --args x
run_shm ours-ab-shm "${J[@]}" --oop-executor="$EXE" "${SHM[@]}" "$OURS/a.o" "$OURS/b.o" --args x
check "#15 a.o + b.o (8 MiB bss, qsort callback), --use-memmgr=shared" \
  'expect_rc ours-ab-shm 0' "expect_stdout ours-ab-shm '$AB'" \
  'same_as ours-ab-shm up-ab-shm' 'expect_clean_stats ours-ab-shm' \
  'expect_shm_service ours-ab-shm' 'expect_no_new_shm ours-ab-shm'
run up-ex-shm "${J[@]}" --oop-executor="$UP" "${SHM[@]}" --preload=libstdc++.so.6 "$THEIRS/ex.o" "$THEIRS/ex_thrower.o"
run_shm ours-ex-shm "${J[@]}" --oop-executor="$EXE" "${SHM[@]}" --preload=libstdc++.so.6 "$OURS/ex.o" "$OURS/ex_thrower.o"
check "#15 C++ exceptions (ex.o + ex_thrower.o), --use-memmgr=shared" \
  'expect_rc ours-ex-shm 7' "expect_stdout ours-ex-shm '$EX'" \
  'same_as ours-ex-shm up-ex-shm' 'expect_clean_stats ours-ex-shm' \
  'expect_shm_service ours-ex-shm' 'expect_stat ours-ex-shm eh_register -ge 2' \
  'expect_no_new_shm ours-ex-shm'
run up-crash-shm "${J[@]}" --oop-executor="$UP" "${SHM[@]}" "$THEIRS/crash.o"
run_shm ours-crash-shm "${J[@]}" --oop-executor="$EXE" "${SHM[@]}" "$OURS/crash.o"
check "#15 crashing program, --use-memmgr=shared" \
  'expect_crash_rc ours-crash-shm' 'same_as ours-crash-shm up-crash-shm' \
  'expect_no_new_shm ours-crash-shm'
run up-undef-shm "${J[@]}" --oop-executor="$UP" "${SHM[@]}" "$THEIRS/undef.o"
run_shm ours-undef-shm "${J[@]}" --oop-executor="$EXE" "${SHM[@]}" "$OURS/undef.o"
check "#15 undefined symbol, --use-memmgr=shared" \
  'expect_rc ours-undef-shm 1' "expect_err ours-undef-shm 'Symbols not found: [ nope ]'" \
  'same_as ours-undef-shm up-undef-shm' 'expect_clean_stats ours-undef-shm' \
  'expect_stat ours-undef-shm error_replies -eq 0' 'expect_same_stderr ours-undef-shm up-undef-shm' \
  'expect_no_new_shm ours-undef-shm'
run up-dbg-shm llvm-jitlink-22 --oop-executor="$UP" "${SHM[@]}" "$THEIRS/hello.o" --args a b
run_shm ours-dbg-shm llvm-jitlink-22 --oop-executor="$EXE" "${SHM[@]}" "$OURS/hello.o" --args a b
check "#15 debugger support on, --use-memmgr=shared" \
  'expect_rc ours-dbg-shm 42' "expect_stdout ours-dbg-shm '$HELLO'" \
  'same_as ours-dbg-shm up-dbg-shm' 'expect_clean_stats ours-dbg-shm' \
  'expect_no_new_shm ours-dbg-shm'
echo "NOTE #15 has no lli run: lli-22 --remote-mcjit has no shared-memory mode"

# Under MDWE: LLVM's shared-memory service cannot make its pages executable (printed, not
# checked); ours maps the object again instead, and gives LLVM's results without MDWE.
if [ "$ARCH" = aarch64 ]; then
  echo "NOT RUN #15 under MDWE$ON: qemu-user refuses PR_SET_MDWE (it checks page protections itself)"
else
  run up-hello-shm-mdwe "${J[@]}" --oop-executor="$W/up-under-mdwe" "${SHM[@]}" "$THEIRS/hello.o" --args a b
  echo "NOTE LLVM's executor under MDWE, --use-memmgr=shared: exit code $(rc up-hello-shm-mdwe), stderr: $(head -c 200 "$W/up-hello-shm-mdwe.err" | tr '\n' ' ')"
  run_shm ours-hello-shm-mdwe "${J[@]}" --oop-executor="$W/ours-under-mdwe" "${SHM[@]}" "$OURS/hello.o" --args a b
  run_shm ours-ab-shm-mdwe "${J[@]}" --oop-executor="$W/ours-under-mdwe" "${SHM[@]}" "$OURS/a.o" "$OURS/b.o" --args x
  run_shm ours-ex-shm-mdwe "${J[@]}" --oop-executor="$W/ours-under-mdwe" "${SHM[@]}" --preload=libstdc++.so.6 "$OURS/ex.o" "$OURS/ex_thrower.o"
  check "#15 under MDWE: hello.o, a.o + b.o, C++ exceptions, --use-memmgr=shared" \
    'expect_rc ours-hello-shm-mdwe 42' "expect_stdout ours-hello-shm-mdwe '$HELLO'" \
    'same_as ours-hello-shm-mdwe up-hello-shm' 'expect_clean_stats ours-hello-shm-mdwe' \
    'expect_shm_service ours-hello-shm-mdwe' 'expect_no_new_shm ours-hello-shm-mdwe' \
    'same_as ours-ab-shm-mdwe up-ab-shm' 'expect_clean_stats ours-ab-shm-mdwe' \
    'expect_shm_service ours-ab-shm-mdwe' 'expect_no_new_shm ours-ab-shm-mdwe' \
    'same_as ours-ex-shm-mdwe up-ex-shm' 'expect_clean_stats ours-ex-shm-mdwe' \
    'expect_shm_service ours-ex-shm-mdwe' 'expect_no_new_shm ours-ex-shm-mdwe'
fi

# #16: the executor killed (SIGKILL) mid-session, while JIT'd main runs: nothing of it may stay
# in /dev/shm. The wrapper records the executor's pid before exec'ing it.
printf '#!/bin/sh\necho $$ >"%s"\nexec "%s" "$@"\n' "$W/killed.pid" "$EXE" >"$W/ours-recording-pid"
chmod +x "$W/ours-recording-pid"
kill_mid_session() {
  local jitlink i pid
  rm -f "$W/killed.pid"
  shm_list >"$W/killed.shm-before"
  timeout "$TIMEOUT" "${J[@]}" --oop-executor="$W/ours-recording-pid" "${SHM[@]}" "$OURS/sleeper.o" \
    >"$W/killed.out" 2>"$W/killed.err" </dev/null &
  jitlink=$!
  for i in $(seq 300); do
    grep -q ready "$W/killed.out" 2>/dev/null && break
    sleep 0.1
  done
  pid=$(cat "$W/killed.pid" 2>/dev/null)
  if ! grep -q ready "$W/killed.out" || [ -z "$pid" ]; then
    kill "$jitlink" 2>/dev/null
    wait "$jitlink"
    echo "the session never got to main: $(head -c 300 "$W/killed.err" | tr '\n' ' ')"
    return 1
  fi
  kill -9 "$pid"
  wait "$jitlink"
  echo $? >"$W/killed.rc"
  # The names are unlinked by the controller, or else by the executor's guard process once it
  # sees the executor gone: give it a moment.
  for i in $(seq 100); do
    shm_list >"$W/killed.shm-after"
    [ -z "$(comm -13 "$W/killed.shm-before" "$W/killed.shm-after")" ] && break
    sleep 0.1
  done
  expect_crash_rc killed && expect_no_new_shm killed
}
check "#16 executor killed (SIGKILL) mid-session, --use-memmgr=shared" 'kill_mid_session'

# #gdb: gdb through JIT'd code (the GDB JIT interface): a -g program crashes three calls deep
# in JIT'd code under gdb, which follows llvm-jitlink into the executor it starts. The backtrace
# must name each JIT'd function with its file and line, as under LLVM's executor. The control:
# ours without the registration (--debugger-support=false) shows `?? ()` there, so the check
# can fail.
if [ "$ARCH" = aarch64 ]; then
  echo "NOT RUN #gdb backtrace$ON: gdb cannot follow the executor into qemu-user"
else
  command -v gdb >/dev/null 2>&1 || { fail setup "gdb missing (bash .ci/run installs it)"; finish; }
  compile c debug_crash.c -g -O0
  GDB=(gdb -nx -q -batch -iex 'set debuginfod enabled off' -ex 'set follow-fork-mode child'
    -ex run -ex bt --args llvm-jitlink-22)
  # expect_frames RUN: deep, middle and main, each at its line marked LINE-<name>.
  expect_frames() {
    local f line
    for f in deep middle main; do
      line=$(grep -n "LINE-$f " "$HERE/debug_crash.c" | cut -d: -f1)
      grep -qE "^#[0-9]+ +0x[0-9a-f]+ in $f \(.*\) at [^ ]*debug_crash\.c:$line\$" "$W/$1.out" ||
        { echo "no frame $f at debug_crash.c:$line: $(grep -E '^#[0-9]' "$W/$1.out" | head -4 | tr '\n' '|')"; return 1; }
    done
  }
  expect_no_names() { # RUN: the control
    grep -qE '^#0 +0x[0-9a-f]+ in \?\? \(\)' "$W/$1.out" && ! grep -qE ' in (deep|middle) \(' "$W/$1.out" ||
      { echo "the control names JIT'd frames or lacks '?? ()': $(grep -E '^#[0-9]' "$W/$1.out" | head -3 | tr '\n' '|')"; return 1; }
  }
  expect_stop() { # RUN: stopped by breakpoint 1 in middle, at its first line
    local line
    line=$(grep -n "LINE-middle-entry " "$HERE/debug_crash.c" | cut -d: -f1)
    grep -qE "hit .*Breakpoint 1, middle \(x=0\) at [^ ]*debug_crash\.c:$line\$" "$W/$1.out" ||
      { echo "no stop at middle, debug_crash.c:$line: $(grep -E 'reakpoint|^#0' "$W/$1.out" | head -3 | tr '\n' '|')"; return 1; }
  }
  run up-gdb "${GDB[@]}" --oop-executor="$UP" "$OURS/debug_crash.o"
  run ours-gdb-off "${GDB[@]}" --oop-executor="$EXE" --debugger-support=false "$OURS/debug_crash.o"
  for mm in generic simple-remote shared; do
    run "ours-gdb-$mm" "${GDB[@]}" --oop-executor="$EXE" --use-memmgr=$mm "$OURS/debug_crash.o"
    check "#gdb backtrace through JIT'd code, --use-memmgr=$mm" \
      'expect_frames up-gdb' "expect_frames ours-gdb-$mm" 'expect_no_names ours-gdb-off'
  done
  # Breakpoints set before the code exists: a hardware one on the detected (dual-mapped) host,
  # whose code mappings the kernel does not let gdb write; a software one on the flip host.
  BREAK=(gdb -nx -q -batch -iex 'set debuginfod enabled off' -ex 'set follow-fork-mode child'
    -ex 'set breakpoint pending on')
  run ours-gdb-hbreak "${BREAK[@]}" -ex 'hbreak middle' -ex run --args llvm-jitlink-22 \
    --oop-executor="$EXE" "$OURS/debug_crash.o"
  MAPCORE_EXECUTOR_WX=flip run ours-gdb-break-flip "${BREAK[@]}" -ex 'break middle' -ex run \
    --args llvm-jitlink-22 --oop-executor="$EXE" "$OURS/debug_crash.o"
  check "#gdb breakpoints in JIT'd code (hbreak; break on the flip host)" \
    'expect_stop ours-gdb-hbreak' 'expect_stop ours-gdb-break-flip'
fi

# #11-#14: LLVM's ORC runtime (liborc_rt from libclang-rt-22-dev), JIT-linked into the executor
# and working through it: the controller calls wrappers in JIT'd code, which call back into the
# controller (jit_wrapper_calls, controller_calls). #11: llvm-jitlink --orc-runtime. #12-#14:
# clang-repl sessions fed on stdin: repl_cxx.repl (iostream, containers, exceptions,
# thread_local, virtual calls, a static constructor and destructor) and repl_undo.repl (inputs
# with a 1 MiB array, each taken back by %undo, which releases the input's slabs; the next input
# gets that memory back: slabs_reused counts reservations that return the base of a slab
# released before). The sessions flush what they print (std::endl, fflush): neither executor
# flushes C stdio between calls, and output still buffered at exit races clang-repl's own.
if [ "$ARCH" = aarch64 ]; then
  echo "NOT RUN #11-#14 ORC runtime, clang-repl$ON: Debian's ORC runtime archive is x86-64 only"
else
  ORC_RT=$(llvm-config-22 --libdir)/clang/22/lib/linux/liborc_rt-x86_64.a
  orc_rt_ready() {
    [ -f "$ORC_RT" ] || { echo "no ORC runtime at $ORC_RT (bash .ci/run installs libclang-rt-22-dev)"; return 1; }
  }
  repl_ready() {
    command -v clang-repl-22 >/dev/null 2>&1 || { echo "clang-repl-22 missing (bash .ci/run installs clang-tools-22)"; return 1; }
    orc_rt_ready
  }
  REPL_CXX=$'vector 4 last 42\nvirtual 4\ncaught boom\nthread_local 8\nstatic ctor\njoined 31242\nstatic dtor'
  REPL_UNDO=$'a 2\nb 4\nc 6\nd 8'
  UNDOS=$(grep -c '^%undo$' "$HERE/repl_undo.repl")
  # Through the ORC runtime: wrappers in JIT'd code called, and calls back to the controller.
  expect_orc_runtime() { # RUN
    expect_stat "$1" jit_wrapper_calls -ge 1 && expect_stat "$1" controller_calls -ge 1
  }
  # Each %undo gave its input's memory back, and the next input got it again.
  expect_reuse() { # RUN
    expect_stat "$1" slabs_released -ge "$UNDOS" && expect_stat "$1" slabs_reused -ge "$UNDOS"
  }
  expect_dual_mapped() { # RUN
    [ "$(stat "$1" wx_mode)" = dual-mapped ] || { echo "wx_mode=$(stat "$1" wx_mode)"; return 1; }
  }

  # The runtime runs main (__orc_rt_run_program) and registers the EH frames itself; C++ needs
  # no --preload: the executor links libstdc++ as LLVM's does.
  run up-orc-hello "${J[@]}" --oop-executor="$UP" --orc-runtime="$ORC_RT" "$THEIRS/hello.o" --args a b
  run ours-orc-hello "${J[@]}" --oop-executor="$EXE" --orc-runtime="$ORC_RT" "$OURS/hello.o" --args a b
  run up-orc-ex "${J[@]}" --oop-executor="$UP" --orc-runtime="$ORC_RT" "$THEIRS/ex.o" "$THEIRS/ex_thrower.o"
  run ours-orc-ex "${J[@]}" --oop-executor="$EXE" --orc-runtime="$ORC_RT" "$OURS/ex.o" "$OURS/ex_thrower.o"
  check "#11 llvm-jitlink --orc-runtime: hello.o, C++ exceptions" \
    orc_rt_ready 'expect_rc ours-orc-hello 42' "expect_stdout ours-orc-hello '$HELLO'" \
    'same_as ours-orc-hello up-orc-hello' 'expect_clean_stats ours-orc-hello' \
    'expect_orc_runtime ours-orc-hello' \
    'expect_rc ours-orc-ex 7' "expect_stdout ours-orc-ex '$EX'" \
    'same_as ours-orc-ex up-orc-ex' 'expect_clean_stats ours-orc-ex' 'expect_orc_runtime ours-orc-ex'

  for session in cxx undo; do
    STDIN=$HERE/repl_$session.repl run "up-repl-$session" clang-repl-22 --oop-executor="$UP" --orc-runtime="$ORC_RT"
    STDIN=$HERE/repl_$session.repl run "ours-repl-$session" clang-repl-22 --oop-executor="$EXE" --orc-runtime="$ORC_RT"
    # (bash's own "Segmentation fault" line for this run is not shown: it is expected below.)
    STDIN=$HERE/repl_$session.repl run "up-repl-$session-mdwe" clang-repl-22 --oop-executor="$W/up-under-mdwe" --orc-runtime="$ORC_RT" 2>/dev/null
    STDIN=$HERE/repl_$session.repl run "ours-repl-$session-mdwe" clang-repl-22 --oop-executor="$W/ours-under-mdwe" --orc-runtime="$ORC_RT"
  done
  check "#12 clang-repl --orc-runtime: C++ session (iostream, containers, exceptions, thread_local, virtual, static ctor/dtor)" \
    repl_ready 'expect_rc ours-repl-cxx 0' "expect_stdout ours-repl-cxx '$REPL_CXX'" \
    'same_as ours-repl-cxx up-repl-cxx' 'expect_clean_stats ours-repl-cxx' 'expect_orc_runtime ours-repl-cxx'
  check "#13 clang-repl --orc-runtime: %undo gives the memory back and it is reused" \
    repl_ready 'expect_rc ours-repl-undo 0' "expect_stdout ours-repl-undo '$REPL_UNDO'" \
    'same_as ours-repl-undo up-repl-undo' 'expect_clean_stats ours-repl-undo' \
    'expect_orc_runtime ours-repl-undo' 'expect_reuse ours-repl-undo'
  for session in cxx undo; do
    why=$(grep -v '^ *#[0-9]' "$W/up-repl-$session-mdwe.err" | head -c 200 | tr '\n' ' ')
    [ -n "$why" ] || why="only a crash stack trace from clang-repl"
    echo "NOTE LLVM's executor under MDWE, clang-repl $session session: exit code $(rc "up-repl-$session-mdwe"), stderr: $why"
  done
  check "#14 under MDWE: both clang-repl sessions, dual-mapped" \
    repl_ready 'same_as ours-repl-cxx-mdwe up-repl-cxx' "expect_stdout ours-repl-cxx-mdwe '$REPL_CXX'" \
    'expect_clean_stats ours-repl-cxx-mdwe' 'expect_dual_mapped ours-repl-cxx-mdwe' \
    'expect_orc_runtime ours-repl-cxx-mdwe' \
    'same_as ours-repl-undo-mdwe up-repl-undo' "expect_stdout ours-repl-undo-mdwe '$REPL_UNDO'" \
    'expect_clean_stats ours-repl-undo-mdwe' 'expect_dual_mapped ours-repl-undo-mdwe' \
    'expect_reuse ours-repl-undo-mdwe'
fi

# #17: both clang-repl sessions with --use-shared-memory (LLVM's shared-memory mapper, #15),
# compared with LLVM's executor in the same mode, and under MDWE; %undo deinitializes the
# input's regions in the one reservation, whose pages the next input gets again.
if [ "$ARCH" = aarch64 ]; then
  echo "NOT RUN #17 clang-repl --use-shared-memory$ON: Debian's ORC runtime archive is x86-64 only"
else
  for session in cxx undo; do
    STDIN=$HERE/repl_$session.repl run "up-repl-$session-shm" clang-repl-22 --oop-executor="$UP" --use-shared-memory --orc-runtime="$ORC_RT"
    STDIN=$HERE/repl_$session.repl run_shm "ours-repl-$session-shm" clang-repl-22 --oop-executor="$EXE" --use-shared-memory --orc-runtime="$ORC_RT"
    STDIN=$HERE/repl_$session.repl run_shm "ours-repl-$session-shm-mdwe" clang-repl-22 --oop-executor="$W/ours-under-mdwe" --use-shared-memory --orc-runtime="$ORC_RT"
  done
  check "#17 clang-repl --use-shared-memory: both sessions, and under MDWE" \
    repl_ready 'expect_rc ours-repl-cxx-shm 0' "expect_stdout ours-repl-cxx-shm '$REPL_CXX'" \
    'same_as ours-repl-cxx-shm up-repl-cxx-shm' 'expect_clean_stats ours-repl-cxx-shm' \
    'expect_shm_service ours-repl-cxx-shm' 'expect_no_new_shm ours-repl-cxx-shm' \
    'expect_rc ours-repl-undo-shm 0' "expect_stdout ours-repl-undo-shm '$REPL_UNDO'" \
    'same_as ours-repl-undo-shm up-repl-undo-shm' 'expect_clean_stats ours-repl-undo-shm' \
    'expect_shm_service ours-repl-undo-shm' 'expect_no_new_shm ours-repl-undo-shm' \
    "expect_stat ours-repl-undo-shm shm_regions_deinitialized -ge $UNDOS" \
    'same_as ours-repl-cxx-shm-mdwe up-repl-cxx-shm' 'expect_shm_service ours-repl-cxx-shm-mdwe' \
    'expect_no_new_shm ours-repl-cxx-shm-mdwe' \
    'same_as ours-repl-undo-shm-mdwe up-repl-undo-shm' 'expect_shm_service ours-repl-undo-shm-mdwe' \
    'expect_no_new_shm ours-repl-undo-shm-mdwe'
fi

if [ -n "${MAPCORE_E2E_KEEP_STATS:-}" ]; then
  mkdir -p "$MAPCORE_E2E_KEEP_STATS" && cp "$W"/*.stats "$MAPCORE_E2E_KEEP_STATS"/ 2>/dev/null
fi

finish
