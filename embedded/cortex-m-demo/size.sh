#!/usr/bin/env bash
# Prints the firmware's .text size and mapcore's share of it, from the release build.
#
# mapcore's share is every function whose symbol names a mapcore item (its own functions and
# the generic code of core and heapless instantiated for its types), plus the instructions of
# other functions that the line table places in mapcore's sources (mapcore code inlined into
# the firmware's own functions). Needs llvm-tools (`rustup component add llvm-tools`) and the
# build made with v0 symbol mangling (.cargo/config.toml sets it).
set -euo pipefail
cd "$(dirname "$0")"

tools="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin"
elf=target/thumbv7m-none-eabi/release/mapcore-cortex-m-demo
[ -f "$elf" ] || { echo "no $elf: run cargo build --release first" >&2; exit 1; }

# grep reads all of llvm-nm's output (no -q): stopping at the first match would kill llvm-nm
# with SIGPIPE, which pipefail reports as a failure.
"$tools/llvm-nm" "$elf" | grep ' _R' >/dev/null ||
  { echo "$elf has no v0 symbol names: was it built with RUSTFLAGS set?" >&2; exit 1; }
read -r text start < <("$tools/llvm-size" -A "$elf" | awk '$1 == ".text" { print $2, $3 }')
# Each instruction's size is the distance to the next one (or to the next function), charged
# to the function it is in and the source file the line table gives for it.
"$tools/llvm-objdump" -d -l -C --no-show-raw-insn -j .text "$elf" | awk -v text="$text" -v start="$start" '
  function hex(s,   n, i) {
    n = 0
    for (i = 1; i <= length(s); i++) n = n * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
    return n
  }
  function charge(to) {
    if (have && to > at) {
      size = to - at
      if (sym ~ /mapcore::/ && sym !~ /^<*&*mapcore_cortex_m_demo::/) {
        own += size
        if (sym ~ /as core::fmt::(Debug|Display)>::fmt$/) fmt += size
      }
      else if (file ~ /\/mapcore\/src\//) { inlined += size }
    }
    have = 0
  }
  /^[0-9a-f]+ <.*>:$/ {
    charge(hex($1))
    sym = substr($0, index($0, "<") + 1); sub(/>:$/, "", sym); file = ""
    next
  }
  /^; \// { file = $2; next }
  /^ +[0-9a-f]+:/ {
    addr = hex(substr($1, 1, length($1) - 1))
    charge(addr)
    at = addr; have = 1
  }
  END {
    charge(start + text)
    total = own + inlined
    printf ".text: %d bytes in all (%.1f KiB)\n", text, text / 1024
    printf "mapcore: %d bytes of .text (%.1f KiB): %d in its own functions, %d inlined into the firmware'"'"'s\n", total, total / 1024, own, inlined
    printf "  of which %d bytes format mapcore values (Debug, Display), linked because the firmware prints errors\n", fmt
  }'
