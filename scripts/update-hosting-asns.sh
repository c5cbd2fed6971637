#!/usr/bin/env bash
# Refreshes crates/fraud/data/hosting-asns.csv, the hosting / datacenter ASN
# dataset behind the `datacenter_asn` fraud signal (docs/fraud.md,
# "Datacenter networks"), from its published source: brianhama/bad-asn-list
# (MIT), an open list of ASNs belonging to cloud, managed hosting and colo
# facilities. Normalises it to `asn,name` sorted by ASN, one row per ASN.
# Review the diff, run `cargo test -p clickstitch-aggregator hosting`, and
# record the source commit and date in crates/fraud/data/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
url="${HOSTING_ASNS_URL:-https://raw.githubusercontent.com/brianhama/bad-asn-list/master/bad-asn-list.csv}"
tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT
curl -fsSL "$url" -o "$tmp"
python3 - "$tmp" crates/fraud/data/hosting-asns.csv <<'PY'
import csv, sys
rows = {}
with open(sys.argv[1], newline='') as f:
    reader = csv.reader(f, skipinitialspace=True)
    next(reader)
    for row in reader:
        if not row:
            continue
        asn = row[0].strip().strip('"')
        if not asn.isdigit():
            continue
        name = (row[1] if len(row) > 1 else '').strip().replace('\n', ' ')
        rows.setdefault(int(asn), name)
with open(sys.argv[2], 'w') as out:
    out.write('asn,name\n')
    for asn in sorted(rows):
        name = rows[asn].replace('"', '""')
        out.write(f'{asn},"{name}"\n')
print(f'{len(rows)} ASNs written to {sys.argv[2]}')
PY
