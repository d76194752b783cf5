#!/usr/bin/env bash
# Times rdpdiag against tcpdump and tshark on the same synthetic capture.
#
#   benches/compare.sh [SIZE_MB]        (default 500)
#
# (a) builds rdpdiag and the generator (release), (b) generates
# benches/data/bench-<SIZE>mb.pcap (seed 1) if missing, (c) runs, one after the other, on a
# warm page cache, each under /usr/bin/time:
#   rdpdiag analyze -j 1 --format jsonl FILE     (one thread)
#   rdpdiag analyze -j 2 --format jsonl FILE     (the file split across two workers)
#   floor FILE    (benches/floor.rs: pcap-parser read + etherparse slice of every frame,
#                  nothing else: the floor of our stack)
#   tcpdump -r FILE -w /dev/null 'tcp port 3389 or icmp'
#   tshark -r FILE -Y 'rdp or tls.alert_message or tcp.flags.reset==1 or icmp' -d tcp.port==3389,tls
# with output to /dev/null, and prints seconds, MB/s (10^6 bytes of capture per second),
# peak RSS and the time ratio to rdpdiag.
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

# Warm the page cache so that every tool reads from memory.
cat "$FILE" >/dev/null

RESULTS=$(mktemp)
trap 'rm -f "$RESULTS" "$RESULTS".t' EXIT

run() { # name, command...
    local name=$1
    shift
    echo "== $name: $*" >&2
    "$TIME" -f '%e %M' -o "$RESULTS.t" "$@" >/dev/null 2>/dev/null || {
        echo "compare.sh: $name failed (exit $?)" >&2
    }
    echo "$name $(tail -n1 "$RESULTS.t")" >>"$RESULTS"
}

run rdpdiag-j1 target/release/rdpdiag analyze -j 1 --format jsonl "$FILE"
run rdpdiag-j2 target/release/rdpdiag analyze -j 2 --format jsonl "$FILE"
run floor target/release/examples/floor "$FILE"
run tcpdump tcpdump -r "$FILE" -w /dev/null 'tcp port 3389 or icmp'
run tshark tshark -r "$FILE" -Y 'rdp or tls.alert_message or tcp.flags.reset==1 or icmp' -d tcp.port==3389,tls

echo
echo "capture: $FILE, $(awk -v b="$BYTES" 'BEGIN {printf "%.1f MB", b / 1e6}')${FRAMES_NOTE:+, $FRAMES_NOTE frames}"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo
awk -v bytes="$BYTES" '
    { name[NR] = $1; secs[NR] = $2; kb[NR] = $3 }
    END {
        printf "%-11s %9s %10s %13s %19s\n", "tool", "seconds", "MB/s", "peak RSS MB", "time / rdpdiag-j1"
        for (i = 1; i <= NR; i++) {
            s = secs[i] > 0 ? secs[i] : 0.01
            printf "%-11s %9.2f %10.0f %13.1f %18.1fx\n", name[i], secs[i], bytes / 1e6 / s, kb[i] / 1024, s / (secs[1] > 0 ? secs[1] : 0.01)
        }
    }' "$RESULTS"
