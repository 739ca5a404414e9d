#!/usr/bin/env bash
# The C side of mapcore-capi, as CI runs it (gate c-abi), from any directory:
#   1. the checked-in header equals a fresh cbindgen run (a stale header fails);
#   2. the static library builds (cargo build --release -p mapcore-capi);
#   3. the C quickstart, the README's C example, every C test (tests/*.c) and the C++ header
#      test (tests/*.cpp) compile with every warning as an error against
#      target/release/libmapcore_capi.a and run; each test program prints
#      "NAME: N passed, N failed" and exits non-zero on a failure.
# Ends with one "N passed, N failed" line over the steps; exits non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/../.."

CC="${CC:-cc}"
CXX="${CXX:-c++}"
CFLAGS=(-std=c11 -O1 -g -Wall -Wextra -Werror -Imapcore-capi/include)
CXXFLAGS=(-std=c++17 -O1 -g -Wall -Wextra -Werror -Imapcore-capi/include)
LIB=target/release/libmapcore_capi.a
LIBS=(-lpthread -ldl -lm)
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok: $*"; }
fail() { failed=$((failed + 1)); echo "FAILED: $*"; }

echo "-- header: regenerate with cbindgen and compare"
if ! command -v cbindgen >/dev/null; then
  fail "cbindgen is not installed (cargo install cbindgen --locked)"
elif ! cbindgen --quiet --config mapcore-capi/cbindgen.toml --output "$OUT/mapcore.h" mapcore-capi; then
  fail "cbindgen could not generate the header"
elif ! diff -u mapcore-capi/include/mapcore.h "$OUT/mapcore.h"; then
  fail "mapcore-capi/include/mapcore.h is stale; regenerate it with:" \
    "cbindgen --config mapcore-capi/cbindgen.toml --output mapcore-capi/include/mapcore.h mapcore-capi"
else
  pass "mapcore-capi/include/mapcore.h is up to date"
fi

echo "-- static library"
if ! cargo build --release -p mapcore-capi; then
  fail "cargo build --release -p mapcore-capi"
  echo "$passed passed, $failed failed"
  exit 1
fi
pass "$LIB built"

# run NAME SOURCE COMPILER FLAGS...: compiles SOURCE against the library and runs it; LABEL,
# if set, names it in the report instead of SOURCE.
run() {
  local name=$1 source=$2
  local label=${LABEL:-$source}
  shift 2
  if ! nice -n 10 "$@" "$source" "$LIB" "${LIBS[@]}" -o "$OUT/$name"; then
    fail "$label does not compile"
  elif ! "$OUT/$name"; then
    fail "$label exited non-zero"
  else
    pass "$label"
  fi
}

echo "-- C quickstart"
run quickstart mapcore-capi/examples/quickstart.c "$CC" "${CFLAGS[@]}"

echo "-- README example"
# The README's C example (its section's first c block), with a main that checks its result.
awk '/^## C and C\+\+ runtimes/ {in_section = 1} in_section && /^```c$/ {in_code = 1; next}
     in_code && /^```$/ {exit} in_code {print}' README.md >"$OUT/readme.c"
if [ ! -s "$OUT/readme.c" ]; then
  fail "README.md has no C example in its section for C and C++ runtimes"
else
  if [ "$(uname -m)" = x86_64 ]; then
    echo 'int main(void) { int got = jit_42(); printf("jit_42() = %d\n", got); return got != 42; }'
  else
    echo 'int main(void) { return 0; } /* the example carries x86-64 code: compiled, not run */'
  fi >>"$OUT/readme.c"
  LABEL="the C example of README.md" run readme "$OUT/readme.c" "$CC" "${CFLAGS[@]}"
fi

echo "-- C tests"
for t in mapcore-capi/tests/*.c; do
  run "$(basename "$t" .c)" "$t" "$CC" "${CFLAGS[@]}"
done

echo "-- C++ header test"
for t in mapcore-capi/tests/*.cpp; do
  run "$(basename "$t" .cpp)_cpp" "$t" "$CXX" "${CXXFLAGS[@]}"
done

echo "c-abi: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
