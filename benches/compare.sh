#!/usr/bin/env bash
# Times rdpdiag against tcpdump and tshark on the same synthetic capture.
#
#   benches/compare.sh [SIZE_MB]        (default 500)
#
# (a) builds rdpdiag and the generator (release), (b) generates
# benches/data/bench-<SIZE>mb.pcap (seed 1) if missing, (c) drops the file's cached pages and
# reads them back (CACHE=as-is skips that), (d) runs in turn, RUNS times (default 5; tshark
# once), each under /usr/bin/time for the peak RSS:
#   rdpdiag analyze -j 1 --format jsonl FILE     (one thread)
#   rdpdiag analyze -j 2 --format jsonl FILE     (the file split across two workers)
#   floor FILE    (benches/floor.rs: pcap-parser read + etherparse slice of every frame,
#                  nothing else: the floor of our stack)
#   tcpdump -r FILE -w /dev/null 'tcp port 3389 or icmp'
#   tshark -r FILE -Y 'rdp or tls.alert_message or tcp.flags.reset==1 or icmp' -d tcp.port==3389,tls
# with output to /dev/null, and prints the median and fastest seconds, MB/s of the median
# (10^6 bytes of capture per second), peak RSS and the ratio of medians to rdpdiag -j 1.
set -euo pipefail

cd "$(dirname "$0")/.."
MB=${1:-500}
FILE=benches/data/bench-${MB}mb.pcap
TIME=/usr/bin/time

if [ ! -x "$TIME" ]; then
    echo "installing GNU time..." >&2
    apt-get install -y time >/dev/null
fi
for tool in tcpdump tshark; do
    command -v "$tool" >/dev/null || { echo "compare.sh: $tool not found" >&2; exit 1; }
done

echo "== building (release)" >&2
cargo build --release --bin rdpdiag --example gen_capture --example floor >&2

mkdir -p benches/data
if [ ! -f "$FILE" ]; then
    echo "== generating $FILE" >&2
    target/release/examples/gen_capture "$FILE" --size-mb "$MB"
fi
BYTES=$(stat -c %s "$FILE")
FRAMES_NOTE=$(capinfos -M -c "$FILE" 2>/dev/null | awk -F: '/Number of packets/ {gsub(/ /,"",$2); print $2}' || true)

# The page cache: by default the file's cached pages are dropped and read back, the state of a
# capture read from disk once. Cached pages can also be in a state that makes every tool's
# reads up to twice as slow (seen on the 504 MB capture: `dd` 80 ms instead of 35-40 ms; see
# benches/README.md); CACHE=as-is keeps whatever state the file is in.
if [ "${CACHE:-reread}" != as-is ]; then
    dd if="$FILE" iflag=nocache count=0 status=none
fi
cat "$FILE" >/dev/null

RESULTS=$(mktemp)
trap 'rm -f "$RESULTS" "$RESULTS".t' EXIT
RUNS=${RUNS:-5}

run() { # name, command...: one run, "name milliseconds peak-KB" appended to $RESULTS
    local name=$1
    shift
    local start end
    start=$(date +%s%N)
    "$TIME" -f '%M' -o "$RESULTS.t" "$@" >/dev/null 2>/dev/null || {
        echo "compare.sh: $name failed (exit $?)" >&2
    }
    end=$(date +%s%N)
    echo "$name $(( (end - start) / 1000000 )) $(tail -n1 "$RESULTS.t")" >>"$RESULTS"
}

# Every tool RUNS times, in turn (tshark once: it takes seconds, not milliseconds).
for i in $(seq "$RUNS"); do
    echo "== run $i of $RUNS" >&2
    run rdpdiag-j1 target/release/rdpdiag analyze -j 1 --format jsonl "$FILE"
    run rdpdiag-j2 target/release/rdpdiag analyze -j 2 --format jsonl "$FILE"
    run floor target/release/examples/floor "$FILE"
    run tcpdump tcpdump -r "$FILE" -w /dev/null 'tcp port 3389 or icmp'
done
echo "== tshark" >&2
run tshark tshark -r "$FILE" -Y 'rdp or tls.alert_message or tcp.flags.reset==1 or icmp' -d tcp.port==3389,tls

echo
echo "capture: $FILE, $(awk -v b="$BYTES" 'BEGIN {printf "%.1f MB", b / 1e6}')${FRAMES_NOTE:+, $FRAMES_NOTE frames}"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo
echo "page cache: ${CACHE:-reread}; $RUNS runs each (tshark 1); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
# Median and fastest run of each tool; ratios from the medians.
for name in rdpdiag-j1 rdpdiag-j2 floor tcpdump tshark; do
    awk -v n="$name" '$1 == n {print $2, $3}' "$RESULTS" | sort -n |
        awk -v n="$name" '{ms[NR] = $1; kb[NR] = $2; if ($2 > peak) peak = $2}
            END {print n, ms[int((NR + 1) / 2)], ms[1], peak}'
done | awk -v bytes="$BYTES" '
    { name[NR] = $1; med[NR] = $2; best[NR] = $3; kb[NR] = $4 }
    END {
        printf "%-11s %10s %10s %10s %13s %19s\n", "tool", "median s", "fastest s", "MB/s", "peak RSS MB", "time / rdpdiag-j1"
        for (i = 1; i <= NR; i++) {
            s = med[i] > 0 ? med[i] / 1000 : 0.001
            printf "%-11s %10.3f %10.3f %10.0f %13.1f %18.1fx\n", name[i], s, best[i] / 1000, bytes / 1e6 / s, kb[i] / 1024, med[i] / (med[1] > 0 ? med[1] : 1)
        }
    }'
