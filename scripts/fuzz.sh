#!/usr/bin/env bash
# Fuzz stage: builds the cargo-fuzz targets in fuzz/ and runs each one briefly on a
# corpus seeded from the reference data; any crash, hang (-timeout), leak or
# out-of-memory fails the stage. Longer runs: docs/fuzzing.md.
#   scripts/fuzz.sh                      # every target, FUZZ_TIME seconds each
#   FUZZ_TIME=600 scripts/fuzz.sh wire_decoder
# Environment:
#   FUZZ_TIME=60     seconds of fuzzing per target
#   FUZZ_JOBS=2      targets fuzzed at the same time (one libFuzzer process each; the
#                    default fits the 2-core CI machines: wall time = 6 x FUZZ_TIME / 2)
# Needs the nightly toolchain and cargo-fuzz; each is installed when missing. The corpus
# lives in fuzz/corpus/ (untracked): the small hand-written seeds in fuzz/seeds/ plus
# files cut from ../shared/data (never copied into the repository).
# Prints the time of each part (cargo-fuzz install, build, runs) and per target the
# executions, executions per second and peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_TIME=${FUZZ_TIME:-60}
FUZZ_JOBS=${FUZZ_JOBS:-2}
DATA=${PRICEHUB_TEST_DATA:-../shared/data}
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(wire_decoder dump_parser batch_json batch_csv order_body query_params)
fail() { echo "FAIL: $*" >&2; exit 1; }
t0=$(date +%s)

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "-- installing the nightly toolchain"
  tn=$(date +%s)
  rustup toolchain install nightly --profile minimal || fail "rustup toolchain install nightly"
  echo "nightly install: $(( $(date +%s) - tn )) s"
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "-- installing cargo-fuzz"
  ti=$(date +%s)
  cargo install cargo-fuzz --locked --quiet || fail "cargo install cargo-fuzz"
  echo "cargo-fuzz install: $(( $(date +%s) - ti )) s"
else
  echo "cargo-fuzz: $(cargo +nightly fuzz --version) (already installed)"
fi

# Seeds cut from the reference data at run time.
CORPUS=fuzz/corpus
seed_from_data() {
  if [ ! -f "$DATA/rates-2021.sql" ]; then
    [ "${CI:-}" = true ] && fail "reference data not found in $DATA (CI=true)"
    echo "!!! reference data not found in $DATA: fuzzing from the hand-written seeds only !!!"
    return
  fi
  python3 - "$DATA" "$CORPUS" <<'PY'
import json, os, sys
data, corpus = sys.argv[1], sys.argv[2]
def put(target, name, content):
    os.makedirs(f"{corpus}/{target}", exist_ok=True)
    with open(f"{corpus}/{target}/data-{name}", "wb") as f:
        f.write(content if isinstance(content, bytes) else content.encode())
capture = open(f"{data}/feed-capture.bin", "rb").read()
for split in (0, 1, 13, 28, 200):          # first byte: where the stream is split
    put("wire_decoder", f"capture-{split}", bytes([split]) + capture)
for edition in ("2021", "2016"):
    lines = open(f"{data}/rates-{edition}.sql", encoding="utf-8").read().split("\n")
    out, in_prices, kept = [], False, 0
    for line in lines:                     # the whole dump, with 30 price rows
        if line.startswith("COPY") and "prices" in line:
            in_prices, kept = True, 0
        elif line == "\\.":
            in_prices = False
        elif in_prices:
            kept += 1
            if kept > 30:
                continue
        out.append(line)
    put("dump_parser", edition, "\n".join(out))
    rows = [l.split("\t") for l in lines if l.count("\t") == 3][:40]
    prices = [r for r in rows if r[3].strip().isdigit()][:20]
    put("batch_json", edition, json.dumps([{"orig_code": o, "dest_code": d, "day": day, "price": int(p)} for o, d, day, p in prices]))
    put("batch_csv", edition, "orig_code,dest_code,day,price\n" + "".join(",".join(r) + "\n" for r in prices))
vectors = json.load(open(f"{data}/rates-vectors.json"))["vectors"]
for i, v in enumerate(vectors):
    put("query_params", f"vector-{i}", v["query"])
put("order_body", "coindesk", open(f"{data}/coindesk-currentprice.json", "rb").read())
PY
}
for t in "${TARGETS[@]}"; do
  mkdir -p "$CORPUS/$t"
  [ -d "fuzz/seeds/$t" ] && cp -n fuzz/seeds/"$t"/* "$CORPUS/$t/" 2>/dev/null || true
done
seed_from_data

echo "-- building ${#TARGETS[@]} targets"
tb=$(date +%s)
if [ ${#TARGETS[@]} -eq 6 ]; then
  cargo +nightly fuzz build || fail "fuzz build"
else
  for t in "${TARGETS[@]}"; do cargo +nightly fuzz build "$t" || fail "build of $t"; done
fi
echo "build: $(( $(date +%s) - tb )) s"

# Each target in its own libFuzzer process, FUZZ_JOBS at a time.
LOGS=$(mktemp -d /tmp/pricehub-fuzz.XXXXXX)
trap 'rm -rf "$LOGS"' EXIT
# The binaries cargo-fuzz built, run directly: `cargo fuzz run` would check the build
# again in every process, and concurrent checks queue on cargo's build lock.
BIN=fuzz/target/$(rustc +nightly -vV | sed -n 's/^host: //p')/release
run_one() { # TARGET: fuzzes it, leaves its log and "<exit status> <seconds>" in $LOGS
  local t=$1 ts=$SECONDS rc=0
  mkdir -p "fuzz/artifacts/$t"
  # -timeout: one input taking 10 s is a hang; -rss_limit_mb: runaway memory fails too.
  "$BIN/$t" -artifact_prefix="fuzz/artifacts/$t/" \
    -max_total_time="$FUZZ_TIME" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 "$CORPUS/$t" >"$LOGS/$t.log" 2>&1 || rc=$?
  echo "$rc $((SECONDS - ts))" >"$LOGS/$t.rc"
}
fuzz_stat() { grep -m1 -o "stat::$1: *[0-9]*" "$2" | grep -o '[0-9]*$' || echo '?'; }
tr=$(date +%s)
running=0
for t in "${TARGETS[@]}"; do
  if [ "$running" -ge "$FUZZ_JOBS" ]; then wait -n || true; running=$((running - 1)); fi
  echo "-- fuzzing $t for $FUZZ_TIME s"
  run_one "$t" &
  running=$((running + 1))
done
wait
echo "runs: $(( $(date +%s) - tr )) s ($FUZZ_JOBS at a time, $FUZZ_TIME s each)"

failed=()
for t in "${TARGETS[@]}"; do
  read -r rc secs <"$LOGS/$t.rc"
  log=$LOGS/$t.log
  if [ "$rc" -eq 0 ]; then
    echo "PASS $t ($secs s, $(fuzz_stat number_of_executed_units "$log") runs, $(fuzz_stat average_exec_per_sec "$log") exec/s, corpus $(find "$CORPUS/$t" -type f | wc -l) files, peak RSS $(fuzz_stat peak_rss_mb "$log") MB)"
  else
    echo "FAIL $t ($secs s, exit $rc):"
    grep -E 'ERROR|panicked|SUMMARY|Test unit written|artifact|error(\[|:)' "$log" | head -20
    failed+=("$t")
  fi
done
echo "fuzz stage: $(( $(date +%s) - t0 )) s"
[ ${#failed[@]} -eq 0 ] || fail "fuzz targets with findings: ${failed[*]} (artifacts under fuzz/artifacts/)"
echo "PASS: every fuzz target ran clean"
