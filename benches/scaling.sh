#!/usr/bin/env bash
# Speed-up of rdpdiag from one to two threads, on one large capture and on a batch of many
# small ones (issue 7 "Speed", target >= 1.8x on 2 cores).
#
#   benches/scaling.sh [SIZE_MB] [FILES]      (default 2000 MB, 1000 files; RUNS=5 for more)
#
# (a) builds release, (b) generates benches/data/bench-<SIZE>mb.pcap (seed 1) if missing and
# cuts benches/data/bench-500mb.pcap into FILES pieces with editcap -c (like a dumpcap ring
# buffer) under benches/data/ring-<FILES>/, (c) with every file's cached pages dropped and
# read back (CACHE=as-is keeps them as they are), times each case RUNS
# times (default 3) with -j 1 and -j 2, alternating them, and prints the fastest run of each
# and the median:
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
# Cached pages dropped and read back (the state of files read from disk once; see
# compare.sh), unless CACHE=as-is.
for f in "$BIG" "$RING"/*; do
    [ "${CACHE:-reread}" = as-is ] || dd if="$f" iflag=nocache count=0 status=none
    cat "$f" >/dev/null
done

OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
RUNS=${RUNS:-3}
run() { # label, args...: one timed run (seconds, to the millisecond) appended to $OUT/label.times
    local label=$1
    shift
    local start end
    start=$(date +%s%N)
    target/release/rdpdiag analyze "$@" --format jsonl >"$OUT/$label.out" 2>/dev/null || true
    end=$(date +%s%N)
    awk -v ns=$((end - start)) 'BEGIN {printf "%.3f\n", ns / 1e9}' >>"$OUT/$label.times"
}
stat_of() { # file of times -> "best median"
    sort -n "$1" | awk '{a[NR] = $1} END {print a[1], a[int((NR + 1) / 2)]}'
}
bytes_big=$(stat -c %s "$BIG")
bytes_ring=$(du -cb "$RING" | tail -n1 | cut -f1)
echo "page cache: ${CACHE:-reread}; $RUNS runs each"
printf "%-28s %8s %8s %9s %9s %8s %17s\n" case "j1 s" "j2 s" "j1 MB/s" "j2 MB/s" speed-up "median j1/j2"
for case in big ring; do
    if [ $case = big ]; then input=$BIG bytes=$bytes_big; name="1 file, $((bytes_big / 1000000)) MB"
    else input=$RING bytes=$bytes_ring; name="$(ls "$RING" | wc -l) files, $((bytes_ring / 1000000)) MB"; fi
    for _ in $(seq "$RUNS"); do
        run ${case}1 -j 1 "$input"
        run ${case}2 -j 2 "$input"
    done
    read -r t1 m1 <<<"$(stat_of "$OUT/${case}1.times")"
    read -r t2 m2 <<<"$(stat_of "$OUT/${case}2.times")"
    cmp -s "$OUT/${case}1.out" "$OUT/${case}2.out" || echo "scaling.sh: -j 1 and -j 2 differ on $input" >&2
    awk -v n="$name" -v a="$t1" -v b="$t2" -v by="$bytes" -v ma="$m1" -v mb="$m2" 'BEGIN {
        printf "%-28s %8.3f %8.3f %9.0f %9.0f %7.2fx %5.3f/%.3f %.2fx\n", n, a, b, by / 1e6 / a, by / 1e6 / b, a / b, ma, mb, ma / mb }'
done
echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
