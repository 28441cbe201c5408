#!/bin/sh
# Builds the seed corpora for the fuzz targets under fuzz/target/corpus/<target>/ (git-ignored)
# from shared/testdata and from the regression corpus in crates/tlsrpt-core/tests/corpus/.
# Usage (from the workspace root): sh fuzz/seed.sh [path/to/shared/testdata]
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
td=${1:-$root/../shared/testdata}
out=$root/fuzz/target/corpus
mkdir -p "$out/message" "$out/report_json" "$out/report_gzip" "$out/record"
n=0
for f in "$td"/reports/*/*.json; do
  n=$((n+1))
  cp "$f" "$out/report_json/seed$n"
  # report_gzip: odd first byte = compress the rest first.
  { printf '\001'; cat "$f"; } > "$out/report_gzip/json$n"
done
for f in "$td"/reports/*/*.gz; do
  n=$((n+1))
  { printf '\000'; cat "$f"; } > "$out/report_gzip/gz$n"
done
for f in "$td"/reports/*/*.eml; do
  n=$((n+1))
  cp "$f" "$out/message/seed$n"
done
# record: the RFC and REQUIREMENTS examples, one RR each, plus an RRset (0x00 between RRs).
printf 'v=TLSRPTv1; rua=mailto:tlsrpt@example.com' > "$out/record/a"
printf 'v=TLSRPTv1;rua=https://reporting.example.com/v1/tlsrpt' > "$out/record/b"
printf 'v=TLSRPTv1; rua=mailto:a@example.com,https://r.example/x; ext=1' > "$out/record/c"
printf 'v=TLSRPTv1 ; rua=mailto:a%%21b@example.com' > "$out/record/d"
printf 'v=spf1 -all\000v=TLSRPTv1; rua=mailto:a@ex\001ample.com' > "$out/record/e"
printf 'v=TLSRPTv1; rua=mailto:a@example.com\000v=TLSRPTv1; rua=mailto:b@example.com' > "$out/record/f"
printf '"v=TLSRPTv1; rua=mailto:a@exa" "mple.net"' > "$out/record/g"
for t in message report_json report_gzip record; do
  if [ -d "$root/crates/tlsrpt-core/tests/corpus/$t" ]; then
    cp "$root/crates/tlsrpt-core/tests/corpus/$t"/* "$out/$t/" 2>/dev/null || true
  fi
done
echo "seeded: $(ls "$out"/* | wc -l) entries under $out"
