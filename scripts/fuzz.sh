#!/usr/bin/env bash
# Fuzz stage (issue 10): builds the cargo-fuzz targets in fuzz/ and runs each one briefly
# on a corpus seeded from the reference data; any crash, hang (-timeout), leak or
# out-of-memory fails the stage. Longer runs: docs/fuzzing.md.
#   scripts/fuzz.sh                      # every target, FUZZ_TIME seconds each
#   FUZZ_TIME=600 scripts/fuzz.sh wire_decoder
# Needs the nightly toolchain (installed on these machines); installs cargo-fuzz when
# missing. The corpus lives in fuzz/corpus/ (untracked): the small hand-written seeds
# in fuzz/seeds/ plus files cut from ../shared/data (never copied into the repository).
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_TIME=${FUZZ_TIME:-25}
DATA=${PRICEHUB_TEST_DATA:-../shared/data}
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(wire_decoder dump_parser batch_json batch_csv order_body query_params)
fail() { echo "FAIL: $*" >&2; exit 1; }
t0=$(date +%s)

rustup toolchain list | grep -q '^nightly' \
  || fail "the nightly toolchain is missing (rustup toolchain install nightly)"
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "-- installing cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet
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

failed=()
for t in "${TARGETS[@]}"; do
  ts=$(date +%s)
  log=$(mktemp)
  # -timeout: one input taking 10 s is a hang; -rss_limit_mb: runaway memory fails too.
  if cargo +nightly fuzz run "$t" "$CORPUS/$t" -- \
        -max_total_time="$FUZZ_TIME" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 >"$log" 2>&1; then
    echo "PASS $t ($(( $(date +%s) - ts )) s, $(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$') runs)"
  else
    echo "FAIL $t ($(( $(date +%s) - ts )) s):"
    grep -E 'ERROR|panicked|SUMMARY|Test unit written|artifact' "$log" | head -20
    failed+=("$t")
  fi
  rm -f "$log"
done
echo "fuzz stage: $(( $(date +%s) - t0 )) s"
[ ${#failed[@]} -eq 0 ] || fail "fuzz targets with findings: ${failed[*]} (artifacts under fuzz/artifacts/)"
echo "PASS: every fuzz target ran clean"
