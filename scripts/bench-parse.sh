#!/usr/bin/env bash
# Parse + validate throughput, tlsrpt vs parsedmarc 11.1 (its parse_report_file, in one Python
# process, start-up excluded), over the same files in one run: every JSON report in
# shared/testdata/reports, the same gzipped, and the same wrapped in RFC 8460 §5.3 messages.
#
# Usage: scripts/bench-parse.sh [SECONDS_PER_KIND]   (needs scripts/install-peers.sh first)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-3}
PY=target/peers-venv/bin/python
[ -x "$PY" ] || { echo "run scripts/install-peers.sh first" >&2; exit 1; }
DATA=../shared/testdata/reports
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# The corpus: usable JSON reports (rpt03 is broken on purpose), gzipped copies, and messages.
"$PY" - "$DATA" "$WORK" <<'PY'
import glob, gzip, os, sys
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.mime.application import MIMEApplication
data, work = sys.argv[1], sys.argv[2]
n = 0
for path in sorted(glob.glob(os.path.join(data, "*", "*.json"))):
    if path.endswith("rpt03.json"):
        continue
    raw = open(path, "rb").read()
    n += 1
    open(os.path.join(work, f"r{n}.json"), "wb").write(raw)
    gz = gzip.compress(raw, mtime=0)
    open(os.path.join(work, f"r{n}.json.gz"), "wb").write(gz)
    m = MIMEMultipart("report", report_type="tlsrpt")
    m["From"] = "tlsrpt@sender.example"
    m["To"] = "tlsrpt@recipient.example"
    m["Subject"] = f"Report Domain: recipient.example Submitter: sender.example Report-ID: <r{n}@sender.example>"
    m["TLS-Report-Domain"] = "recipient.example"
    m["TLS-Report-Submitter"] = "sender.example"
    m.attach(MIMEText("This is an aggregate TLS report.\n"))
    part = MIMEApplication(gz, "tlsrpt+gzip")
    part.add_header("Content-Disposition", "attachment", filename=f"sender.example!recipient.example!0!86399!{n}.json.gz")
    m.attach(part)
    open(os.path.join(work, f"r{n}.eml"), "wb").write(m.as_bytes())
print(f"corpus: {n} reports x (json, gzip, message) in {work}", file=sys.stderr)
PY

cargo build --release -q -p tlsrpt-core --example parse_files
OURS=$(target/release/examples/parse_files "$SECS" "$WORK"/*)

THEIRS=$("$PY" - "$WORK" "$SECS" <<'PY'
import glob, json, os, sys, time, logging
logging.disable(logging.CRITICAL)
import parsedmarc
work, secs = sys.argv[1], float(sys.argv[2])
for kind, pattern in (("json", "*.json"), ("gzip", "*.json.gz"), ("message", "*.eml")):
    files = [open(p, "rb").read() for p in sorted(glob.glob(os.path.join(work, pattern)))]
    def parse(b):
        try:
            parsedmarc.parse_report_file(b, offline=True)
            return True
        except Exception:
            return False
    failures = sum(1 for b in files if not parse(b))
    start = time.perf_counter(); parses = 0
    while time.perf_counter() - start < secs:
        for b in files:
            parse(b)
        parses += len(files)
    s = time.perf_counter() - start
    print(json.dumps({"kind": kind, "files": len(files), "parses": parses, "seconds": round(s, 3),
                      "per_second": round(parses / s), "failures": failures}))
PY
)

echo "| input | tlsrpt reports/s | parsedmarc reports/s | speed-up | tlsrpt failures | parsedmarc failures |"
echo "|---|---|---|---|---|---|"
"$PY" - "$OURS" "$THEIRS" <<'PY'
import json, sys
ours = {d["kind"]: d for d in map(json.loads, sys.argv[1].splitlines())}
theirs = {d["kind"]: d for d in map(json.loads, sys.argv[2].splitlines())}
for k in ("json", "gzip", "message"):
    o, t = ours.get(k), theirs.get(k)
    if not o or not t:
        continue
    print(f"| {k} ({o['files']} files) | {o['per_second']:,} | {t['per_second']:,} | {o['per_second']/max(t['per_second'],1):.0f}x | {o['failures']} | {t['failures']} |")
PY
