#!/usr/bin/env bash
# Speed-up of rdpdiag from one to two threads, on one large capture and on a batch of many
# small ones (issue "Batch analysis", target >= 1.8x on 2 cores).
#
#   benches/scaling.sh [SIZE_MB] [FILES]      (default 2000 MB, 1000 files)
#
# (a) builds release, (b) generates benches/data/bench-<SIZE>mb.pcap (seed 1) if missing and
# cuts benches/data/bench-500mb.pcap into FILES pieces with editcap -c (like a dumpcap ring
# buffer) under benches/data/ring-<FILES>/, (c) on a warm page cache, times each case three
# times with -j 1 and -j 2 and keeps the fastest run of each:
#   rdpdiag analyze -j N --format jsonl BIG_FILE
#   rdpdiag analyze -j N --format jsonl benches/data/ring-<FILES>/
# and checks that -j 1 and -j 2 print the same thing.
set -euo pipefail

cd "$(dirname "$0")/.."
MB=${1:-2000}
FILES=${2:-1000}
BIG=benches/data/bench-${MB}mb.pcap
SRC=benches/data/bench-500mb.pcap
RING=benches/data/ring-${FILES}
TIME=/usr/bin/time
[ -x "$TIME" ] || apt-get install -y time >/dev/null
command -v editcap >/dev/null || { echo "scaling.sh: editcap (wireshark-common) not found" >&2; exit 1; }

cargo build --release --bin rdpdiag --example gen_capture >&2
mkdir -p benches/data
[ -f "$BIG" ] || target/release/examples/gen_capture "$BIG" --size-mb "$MB"
[ -f "$SRC" ] || target/release/examples/gen_capture "$SRC" --size-mb 500
if [ ! -d "$RING" ]; then
    frames=$(capinfos -M -c "$SRC" | awk -F: '/Number of packets/ {gsub(/ /,"",$2); print $2}')
    mkdir -p "$RING"
    editcap -c $(( (frames + FILES - 1) / FILES )) "$SRC" "$RING/ring.pcap"
fi
cat "$BIG" "$RING"/* >/dev/null

OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
best() { # label, args...
    local label=$1 t best=""
    shift
    for _ in 1 2 3; do
        "$TIME" -f '%e' -o "$OUT/t" target/release/rdpdiag analyze "$@" --format jsonl >"$OUT/$label.out" 2>/dev/null || true
        t=$(tail -n1 "$OUT/t")
        if [ -z "$best" ] || awk -v a="$t" -v b="$best" 'BEGIN {exit !(a < b)}'; then best=$t; fi
    done
    echo "$best"
}
bytes_big=$(stat -c %s "$BIG")
bytes_ring=$(du -cb "$RING" | tail -n1 | cut -f1)
printf "%-28s %8s %8s %9s %9s %8s\n" case "j1 s" "j2 s" "j1 MB/s" "j2 MB/s" speed-up
for case in big ring; do
    if [ $case = big ]; then input=$BIG bytes=$bytes_big; name="1 file, $((bytes_big / 1000000)) MB"
    else input=$RING bytes=$bytes_ring; name="$(ls "$RING" | wc -l) files, $((bytes_ring / 1000000)) MB"; fi
    t1=$(best ${case}1 -j 1 "$input")
    t2=$(best ${case}2 -j 2 "$input")
    cmp -s "$OUT/${case}1.out" "$OUT/${case}2.out" || echo "scaling.sh: -j 1 and -j 2 differ on $input" >&2
    awk -v n="$name" -v a="$t1" -v b="$t2" -v by="$bytes" 'BEGIN {
        printf "%-28s %8.2f %8.2f %9.0f %9.0f %7.2fx\n", n, a, b, by / 1e6 / a, by / 1e6 / b, a / b }'
done
echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
