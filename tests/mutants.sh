#!/usr/bin/env bash
# Mutation score of the core: plants one plausible bug at a time in mapcore/src, runs
# `cargo test --workspace -- --test-threads=1`, restores the file, and prints `N caught, N missed`.
#
#   bash tests/mutants.sh            # every mutant
#   bash tests/mutants.sh M03 M17    # only these
#
# Each mutant is an exact search/replace that must match exactly once in its file; one that
# no longer applies (the code moved on) fails the script loudly instead of counting as caught
# or missed. A mutant missed by `cargo test --workspace` is then run against the loom models
# (the `loom` gate of .ci/run) and reported as "caught only by loom" if they fail. The tree is
# restored after every mutant and on exit, even on Ctrl-C. The unmutated tree must pass first,
# or nothing would mean anything. Not a CI gate: it takes about an hour (RELIABILITY.md).
set -uo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR=never
LOGS="${MUTANTS_LOGS:-target/mutants}"
# A mutant that makes a test hang counts as caught by the timeout.
TIMEOUT="${MUTANTS_TIMEOUT:-1800}"
mkdir -p "$LOGS"

IDS=() FILES=() SEARCHES=() REPLACES=() WHATS=()
# mutant ID FILE SEARCH REPLACE WHAT
mutant() {
  IDS+=("$1") FILES+=("mapcore/src/$2") SEARCHES+=("$3") REPLACES+=("$4") WHATS+=("$5")
}

# ---- validation (plan.rs) -------------------------------------------------------------------
mutant M01 plan.rs 'if request.segments.len() > MAX_SEGMENTS {' \
  'if request.segments.len() > MAX_SEGMENTS + 1 {' \
  'one segment more than MAX_SEGMENTS passes validation'
mutant M02 plan.rs 'if request.actions.len() > MAX_ACTION_PAIRS {' \
  'if request.actions.len() >= MAX_ACTION_PAIRS {' \
  'exactly MAX_ACTION_PAIRS pairs are rejected'
mutant M03 plan.rs 'if seg.content.len() > seg.size {' \
  'if seg.content.len() > seg.size + 1 {' \
  'content one byte longer than its segment is accepted'
mutant M04 plan.rs 'if seg.group.prot.is_write_exec() && !allow_write_exec {' \
  'if seg.group.prot.is_write_exec() && allow_write_exec {' \
  'the write+execute check is inverted'
mutant M05 plan.rs 'key.is_none_or(|(k, _)| seg.addr < k)' \
  'key.is_none_or(|(k, _)| seg.addr > k)' \
  'the key is the highest Standard segment instead of the lowest'
mutant M06 plan.rs 'if pair[0].range.end() > pair[1].range.start() {' \
  'if pair[0].range.end() >= pair[1].range.start() {' \
  'adjacent segments count as sharing a page'
mutant M07 plan.rs 'if !is_aligned(seg.addr, page_size) {' \
  'if !is_aligned(seg.addr, page_size) && seg.size > 0 {' \
  'an empty segment may be misaligned'

# ---- placement and lookups (state.rs, slabs.rs, regions.rs) ---------------------------------
mutant M08 slabs.rs 'self.base <= addr && (addr < self.end() || (empty && addr == self.end()))' \
  'self.base <= addr && (addr <= self.end() || (empty && addr == self.end()))' \
  'a non-empty segment may start at the slab end'
mutant M09 slabs.rs '.is_some_and(|s| s.end() > base))' \
  '.is_some_and(|s| s.end() >= base))' \
  'a slab ending exactly at a new base counts as overlapping it'
mutant M10 state.rs '.is_some_and(|end| end <= slab.end());' \
  '.is_some_and(|end| end < slab.end());' \
  'a segment ending exactly at the slab end is rejected'
mutant M11 state.rs 'if slab.state != SlabState::Live {' \
  'if slab.state == SlabState::Releasing {' \
  'initialize accepted in a slab whose release failed'
mutant M12 state.rs 'if key_in_use {' \
  'if key_in_use && !key_is_empty {' \
  'an empty-key region may reuse a live key'
mutant M13 state.rs '            if survey.in_use {' \
  '            if survey.in_use && span.lifetime == Lifetime::Standard {' \
  'Finalize-lifetime segments may overlap live regions'
mutant M14 state.rs '            } else if self.slabs.containing(key).is_some() {' \
  '            } else if self.slabs.containing(key).is_none() {' \
  'UnknownKey and NotInAnySlab swapped'
mutant M15 state.rs '            return Err(if self.slabs.containing(base).is_some() {' \
  '            return Err(if self.slabs.containing(base).is_none() {' \
  'NotSlabBase and NotInAnySlab swapped'
mutant M16 state.rs 'let busy = slab.state == SlabState::Releasing' \
  'let busy = slab.state == SlabState::ReleaseFailed' \
  'a slab being released can be released again; a failed one cannot be retried'
mutant M17 regions.rs '&& (!with_deallocs || self.deallocs.make_room(1))' \
  '&& (with_deallocs || self.deallocs.make_room(1))' \
  'no room is made for dealloc actions when a region has some'

# ---- rollback and error-path bookkeeping (state.rs, action.rs) -------------------------------
mutant M18 state.rs '        if !unmapped {' \
  '        if unmapped {' \
  'a failed unmap forgets the slab; a successful one keeps it'
mutant M19 state.rs '        } else if reuse_exec {' \
  '        } else if !reuse_exec {' \
  'executable pages quarantined exactly when the host can reuse them'
mutant M20 action.rs '                let cleanup_failures = run_dealloc_actions(kept);' \
  '                let cleanup_failures = 0;' \
  'a failed finalize action skips the cleanup deallocs'
mutant M21 action.rs '        .rev()
        .filter(|action| action.run().is_err())' \
  '        .filter(|action| action.run().is_err())' \
  'dealloc actions run oldest first'
mutant M22 action.rs '.filter(|action| action.run().is_err())' \
  '.filter(|action| action.run().is_ok())' \
  'dealloc failures counted as successes and the other way round'
mutant M23 action.rs 'for (index, pair) in pairs.iter().take(MAX_ACTION_PAIRS).enumerate() {' \
  'for (index, pair) in pairs.iter().take(MAX_ACTION_PAIRS - 1).enumerate() {' \
  'the last of MAX_ACTION_PAIRS pairs is never run'

# ---- the run -----------------------------------------------------------------------------------
BACKUP=""
BACKED_UP_FILE=""
restore() {
  if [ -n "$BACKUP" ]; then
    cp "$BACKUP" "$BACKED_UP_FILE" && rm -f "$BACKUP"
    BACKUP=""
  fi
}
trap 'restore; exit 130' INT TERM
trap restore EXIT

# apply FILE SEARCH REPLACE: exactly one match, or a loud failure.
apply() {
  python3 - "$1" "$2" "$3" <<'EOF'
import sys
path, search, replace = sys.argv[1:4]
text = open(path).read()
n = text.count(search)
if n != 1:
    sys.exit(f"search string found {n} times in {path} (must be exactly once)")
open(path, "w").write(text.replace(search, replace))
EOF
}

# One test thread: tests that look for leftover mappings in /proc/self/maps see other tests'
# fresh mappings at the same addresses when they run in parallel, and fail now and then
# (mapcore-std's `dual::dropping_the_map_releases_everything` did, on the unmutated tree).
workspace_tests() { # LOG
  timeout "$TIMEOUT" cargo test --workspace -- --test-threads=1 >"$1" 2>&1
}

loom_tests() { # LOG
  RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom timeout "$TIMEOUT" \
    cargo test -p mapcore --features testing --test loom --release >"$1" 2>&1
}

# The first failing test of a log, for the report.
first_failure() {
  grep -m1 -E '^test .* FAILED$|^error(\[E[0-9]+\])?:|panicked at' "$1" | cut -c1-120
}

selected() { # ID
  [ ${#ONLY[@]} -eq 0 ] && return 0
  local want
  for want in "${ONLY[@]}"; do [ "$want" = "$1" ] && return 0; done
  return 1
}

ONLY=("$@")
# Every mutant must apply before anything runs: a stale one stops the script at once.
for i in "${!IDS[@]}"; do
  selected "${IDS[$i]}" || continue
  n=$(python3 -c 'import sys; print(open(sys.argv[1]).read().count(sys.argv[2]))' \
    "${FILES[$i]}" "${SEARCHES[$i]}")
  if [ "$n" != 1 ]; then
    echo "FAILED LOUDLY: mutant ${IDS[$i]} does not apply: its search string occurs $n times in ${FILES[$i]}"
    exit 2
  fi
done

start=$SECONDS
echo "baseline: cargo test --workspace on the unmutated tree"
if ! workspace_tests "$LOGS/baseline.log"; then
  echo "FAILED LOUDLY: the unmutated tree fails its tests ($LOGS/baseline.log): $(first_failure "$LOGS/baseline.log")"
  exit 2
fi
echo "baseline passes ($((SECONDS - start)) s)"

caught=0 missed=0 loom_only=0
for i in "${!IDS[@]}"; do
  id=${IDS[$i]} file=${FILES[$i]}
  selected "$id" || continue
  t0=$SECONDS
  BACKUP=$(mktemp)
  BACKED_UP_FILE=$file
  cp "$file" "$BACKUP"
  if ! apply "$file" "${SEARCHES[$i]}" "${REPLACES[$i]}"; then
    echo "FAILED LOUDLY: mutant $id does not apply"
    exit 2
  fi
  log="$LOGS/$id.log"
  if workspace_tests "$log"; then
    if loom_tests "$LOGS/$id.loom.log"; then
      missed=$((missed + 1))
      verdict="MISSED"
    else
      loom_only=$((loom_only + 1))
      caught=$((caught + 1))
      verdict="caught only by loom: $(first_failure "$LOGS/$id.loom.log")"
    fi
  else
    rc=$?
    caught=$((caught + 1))
    if [ "$rc" = 124 ]; then
      verdict="caught (timeout after $TIMEOUT s)"
    else
      verdict="caught: $(first_failure "$log")"
    fi
  fi
  restore
  printf '%s %-10s %-62s %4d s  %s\n' "$id" "${file#mapcore/src/}" "${WHATS[$i]}" \
    $((SECONDS - t0)) "$verdict"
done
echo "total $((SECONDS - start)) s"
echo "$caught caught, $missed missed ($loom_only of the caught only by loom)"
[ "$missed" -eq 0 ]
