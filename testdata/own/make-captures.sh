#!/usr/bin/env bash
# Regenerate the RDP packet-capture fixtures in this directory.
#
#   sudo ./make-captures.sh              # all scenarios
#   sudo ./make-captures.sh tls-success port-closed   # only these
#   sudo ./make-captures.sh --list
#
# Every scenario runs between two network namespaces created here
# (client "rdpdc" 10.77.0.2 / fd77::2, server "rdpds" 10.77.0.1 / fd77::1,
# joined by a veth pair).  Nothing leaves the machine.  The capture is taken
# on the client-side veth (client's point of view) unless stated otherwise.
# iptables rules only ever live inside the server namespace, so deleting the
# namespace restores everything.  A trap cleans up on any exit.
#
# Environment: KEEP_WORK=1 keeps the temporary work directory (logs).
set -u

OUT=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d /tmp/rdpdiag-cap.XXXXXX)
chmod 755 "$WORK"
PY=/usr/bin/python3          # Debian's python (python3-xlib lives there)
NSC=rdpdc NSS=rdpds NSR=rdpdr
C4=10.77.0.2 S4=10.77.0.1 C6=fd77::2 S6=fd77::1
VC4=10.77.100.2 VS4=10.77.100.1
DISP_C=:71                   # Xvfb for the xfreerdp clients
DISP_S=:72                   # Xvfb shared by freerdp-shadow-cli
RDP_USER=rdpuser RDP_PASS='Passw0rd!'

ALL_SCENARIOS=(
  tls-success rdp-std-security-success neg-ssl-required neg-ssl-not-allowed
  neg-ssl-required-legacy xrdp-rdp-only-tls-client rdp-std-security-mac-error
  neg-hybrid-required nla-success nla-wrong-password
  port-closed filtered-drop icmp-reject icmp-admin-prohibited
  silent-server server-close-after-accept server-reset-after-accept
  other-service other-service-ssh
  tls-version-mismatch tls-no-shared-cipher cert-rejected
  nonstandard-port ipv6-success vlan mtu-blackhole sll tls12-success
  cert-rejected-tls13 sll1
)

SCEN_PIDS=()     # process-group leaders started by the current scenario
GLOBAL_PIDS=()   # Xvfb servers

log() { echo "[make-captures] $*" >&2; }

# ---------------------------------------------------------------- packages
need_pkgs() {
  local missing=() p
  for p in xrdp freerdp2-x11 freerdp2-shadow-x11 xvfb tcpdump tshark iproute2 \
           iptables openssl netcat-openbsd python3 python3-xlib ethtool; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "installing: ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# ---------------------------------------------------------------- processes
# bg NAME cmd... : start cmd in its own session/process group, log to WORK/NAME.log
bg() {
  local name=$1; shift
  setsid "$@" >"$WORK/$name.log" 2>&1 < /dev/null &
  SCEN_PIDS+=($!)
  LAST_PID=$!
}
kill_group() {   # kill one process group we started, by its leader's pid
  local pid=$1
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
  for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -KILL -- "-$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
}
scen_cleanup() {
  local i
  for ((i=${#SCEN_PIDS[@]}-1; i>=0; i--)); do kill_group "${SCEN_PIDS[i]}"; done
  SCEN_PIDS=()
  net_down
}
cleanup() {
  trap - EXIT INT TERM
  scen_cleanup
  local p; for p in "${GLOBAL_PIDS[@]}"; do kill_group "$p"; done
  if [[ ${KEEP_WORK:-0} == 1 ]]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() {  # wait_port NS PORT : until something listens on tcp PORT in NS
  local i
  for i in $(seq 1 50); do
    ip netns exec "$1" ss -Hltn "sport = :$2" 2>/dev/null | grep -q LISTEN && return 0
    sleep 0.1
  done
  log "nothing listening on port $2 in $1"; return 1
}

# ---------------------------------------------------------------- network
net_up() {   # net_up [vlan]
  net_down
  ip netns add $NSC; ip netns add $NSS
  ip link add c0 netns $NSC type veth peer name s0 netns $NSS
  local ns dev a4 a6
  for ns in $NSC $NSS; do
    if [[ $ns == "$NSC" ]]; then dev=c0 a4=$C4 a6=$C6; else dev=s0 a4=$S4 a6=$S6; fi
    ip -n $ns link set lo up
    ip netns exec $ns sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
    ip -n $ns link set $dev up
    ip -n $ns addr add $a4/24 dev $dev
    ip -n $ns addr add $a6/64 dev $dev nodad
    # no segmentation/receive offload: the capture shows wire-size segments
    ip netns exec $ns ethtool -K $dev tso off gso off gro off tx off rx off >/dev/null 2>&1
    # no IPv6 router solicitations etc. in the captures
    ip netns exec $ns sysctl -qw net.ipv6.conf.$dev.router_solicitations=0 2>/dev/null
  done
  if [[ ${1:-} == vlan ]] && ip -n $NSC link add link c0 name c0.100 type vlan id 100 2>/dev/null; then
    ip -n $NSS link add link s0 name s0.100 type vlan id 100
    ip -n $NSC addr add $VC4/24 dev c0.100; ip -n $NSC link set c0.100 up
    ip -n $NSS addr add $VS4/24 dev s0.100; ip -n $NSS link set s0.100 up
    ip netns exec $NSC ethtool -K c0 txvlan off rxvlan off >/dev/null 2>&1
    ip netns exec $NSS ethtool -K s0 txvlan off rxvlan off >/dev/null 2>&1
  fi
  # pre-resolve neighbours so ARP/ND does not clutter the start of a capture
  ip netns exec $NSC ping -c1 -W1 $S4 >/dev/null 2>&1
  ip netns exec $NSC ping -6 -c1 -W1 $S6 >/dev/null 2>&1
  ip -n $NSC link show c0.100 >/dev/null 2>&1 && ip netns exec $NSC ping -c1 -W1 $VS4 >/dev/null 2>&1
  return 0
}
net_down() {
  ip netns del $NSC 2>/dev/null; ip netns del $NSS 2>/dev/null; ip netns del $NSR 2>/dev/null
  return 0
}
# net_up_router: client 10.77.0.2 -- (10.77.0.1 r0 | router | r1 10.78.0.1) -- server 10.78.0.2
net_up_router() {
  net_down
  ip netns add $NSC; ip netns add $NSS; ip netns add $NSR
  ip link add c0 netns $NSC type veth peer name r0 netns $NSR
  ip link add s0 netns $NSS type veth peer name r1 netns $NSR
  local ns dev
  for ns in $NSC $NSS $NSR; do ip -n $ns link set lo up; done
  for x in "$NSC c0" "$NSS s0" "$NSR r0" "$NSR r1"; do
    set -- $x
    ip -n $1 link set $2 up
    ip netns exec $1 ethtool -K $2 tso off gso off gro off tx off rx off >/dev/null 2>&1
  done
  ip -n $NSC addr add 10.77.0.2/24 dev c0; ip -n $NSC route add default via 10.77.0.1
  ip -n $NSR addr add 10.77.0.1/24 dev r0; ip -n $NSR addr add 10.78.0.1/24 dev r1
  ip -n $NSS addr add 10.78.0.2/24 dev s0; ip -n $NSS route add default via 10.78.0.1
  ip netns exec $NSR sysctl -qw net.ipv4.ip_forward=1
  ip netns exec $NSC ping -c1 -W1 10.78.0.2 >/dev/null 2>&1
  return 0
}

# ---------------------------------------------------------------- capture
# cap_start FILE [iface] [extra tcpdump args...]   (runs in the client ns)
cap_start() {
  local file=$1 iface=${2:-c0}; shift; (($#)) && shift
  CAP_FILE=$WORK/$file
  rm -f "$CAP_FILE"
  local filter='tcp or icmp or (icmp6 and not (ip6[40] >= 133 and ip6[40] <= 137))'
  bg tcpdump ip netns exec $NSC tcpdump -Z root -i "$iface" -s 0 -U --immediate-mode -w "$CAP_FILE" "$@" "$filter"
  CAP_PID=$LAST_PID
  local i; for i in $(seq 1 50); do grep -q 'listening on' "$WORK/tcpdump.log" && break; sleep 0.1; done
  sleep 0.3
}
cap_stop() {   # cap_stop NAME : stop tcpdump, copy to OUT/NAME.pcap, print a result line
  local name=$1
  sleep 1
  kill -INT "$CAP_PID" 2>/dev/null; wait "$CAP_PID" 2>/dev/null
  cp "$CAP_FILE" "$OUT/$name.pcap"; chmod 644 "$OUT/$name.pcap"
}

# ---------------------------------------------------------------- servers
mk_cert() {
  [[ -f $WORK/cert.pem ]] && return
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/key.pem" -out "$WORK/cert.pem" \
    -days 3650 -subj /CN=rdpdiag-test-server >/dev/null 2>&1
}
# start_xrdp SECURITY_LAYER [key=value ...]   (xrdp in the server namespace)
start_xrdp() {
  local sec=$1; shift
  mk_cert
  local ini=$WORK/xrdp.ini
  sed -e "s/^security_layer=.*/security_layer=$sec/" \
      -e "s#^certificate=.*#certificate=$WORK/cert.pem#" \
      -e "s#^key_file=.*#key_file=$WORK/key.pem#" \
      -e "s#^LogFile=.*#LogFile=$WORK/xrdp-server.log#" \
      -e "s/^EnableSyslog=.*/EnableSyslog=false/" \
      /etc/xrdp/xrdp.ini > "$ini"
  local kv k v port=3389
  for kv in "$@"; do
    k=${kv%%=*} v=${kv#*=}
    [[ $k == port ]] && port=$v
    if grep -q "^#\?$k=" "$ini"; then
      sed -i "0,/^#\?$k=.*/s##$k=$v#" "$ini"
    else
      sed -i "/^\[Globals\]/a $k=$v" "$ini"
    fi
  done
  rm -f /var/run/xrdp/xrdp.pid /var/run/xrdp.pid
  mkdir -p /var/run/xrdp
  bg xrdp ip netns exec $NSS xrdp --nodaemon --config "$ini"
  wait_port $NSS "$port"
}
start_xvfb() {   # start_xvfb DISPLAY  (root namespace, unix socket only)
  local d=$1 n=${1#:}
  [[ -S /tmp/.X11-unix/X$n ]] && return
  setsid Xvfb "$d" -screen 0 800x600x24 -nolisten tcp -noreset >"$WORK/xvfb$n.log" 2>&1 </dev/null &
  GLOBAL_PIDS+=($!)
  local i; for i in $(seq 1 50); do [[ -S /tmp/.X11-unix/X$n ]] && break; sleep 0.1; done
}
# start_shadow SEC  (freerdp-shadow-cli in the server ns, SAM file with RDP_USER)
start_shadow() {
  start_xvfb $DISP_S
  local nt
  nt=$(printf '%s' "$RDP_PASS" | iconv -f utf-8 -t utf-16le | openssl dgst -md4 -provider legacy -provider default -r | cut -d' ' -f1)
  printf '%s::%s:%s:::\n' "$RDP_USER" "aad3b435b51404eeaad3b435b51404ee" "$nt" > "$WORK/sam"
  mkdir -p "$WORK/shadowhome"
  bg shadow ip netns exec $NSS env HOME="$WORK/shadowhome" DISPLAY=$DISP_S \
     freerdp-shadow-cli /port:3389 /sec:"$1" /sam-file:"$WORK/sam" -may-interact
  wait_port $NSS 3389
}
# start_py MODE [port]  (tiny fake servers, see fake_server.py below)
start_py() {
  bg pysrv ip netns exec $NSS $PY "$WORK/fake_server.py" "$1" "${2:-3389}"
  wait_port $NSS "${2:-3389}"
}

write_helpers() {
cat > "$WORK/fake_server.py" <<'EOF'
import socket, struct, sys, time
mode, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", port)); s.listen(5)
while True:
    c, _ = s.accept()
    if mode == "silent":            # accept, read, never answer
        c.recv(4096); time.sleep(3600)
    elif mode == "close":           # accept, read the request, close without answering -> FIN
        c.recv(4096); c.close()     # (closing with the request still unread would send RST)
    elif mode == "reset":           # accept and abort -> RST
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
    elif mode == "http":            # an HTTP server on 3389
        c.recv(4096)
        body = b"<html><body><h1>400 Bad Request</h1></body></html>\n"
        c.sendall(b"HTTP/1.1 400 Bad Request\r\nServer: nginx\r\nContent-Type: text/html\r\n"
                  b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
        c.close()
    elif mode == "ssh":             # an SSH server on 3389 (banner first)
        c.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")
        c.recv(4096)
        c.sendall(b"Invalid SSH identification string.\r\n")
        c.close()
EOF
cat > "$WORK/rawclient.py" <<'EOF'
# Minimal RDP client: one X.224 Connection Request carrying an RDP_NEG_REQ
# with the given requestedProtocols, print the Connection Confirm, then close.
# (FreeRDP 2 never sends an RDP_NEG_REQ when only Standard RDP Security is
# enabled: it sends a legacy CR without negotiation data.)
import socket, struct, sys
host, port, proto = sys.argv[1], int(sys.argv[2]), int(sys.argv[3], 0)
cookie = b"Cookie: mstshash=rdpuser\r\n"
neg = struct.pack("<BBHI", 1, 0, 8, proto)
x224 = bytes([0xE0, 0, 0, 0, 0, 0]) + cookie + neg
pdu = bytes([len(x224)]) + x224
s = socket.create_connection((host, port), timeout=5)
s.sendall(struct.pack(">BBH", 3, 0, 4 + len(pdu)) + pdu)
try:
    print(s.recv(4096).hex())
except socket.timeout:
    print("timeout")
s.close()
EOF
cat > "$WORK/vlan_tag.py" <<'EOF'
# Insert an 802.1Q tag (given VLAN id, PCP 0) after the MAC addresses of every
# Ethernet frame of a classic pcap file, in place.
import struct, sys
path, vid = sys.argv[1], int(sys.argv[2])
data = open(path, "rb").read()
hdr, off, out = data[:24], 24, []
assert struct.unpack("<I", hdr[:4])[0] == 0xa1b2c3d4 and struct.unpack("<I", hdr[20:24])[0] == 1
while off < len(data):
    ts, tu, incl, orig = struct.unpack("<IIII", data[off:off+16]); off += 16
    pkt = data[off:off+incl]; off += incl
    pkt = pkt[:12] + struct.pack(">HH", 0x8100, vid) + pkt[12:]
    out.append(struct.pack("<IIII", ts, tu, incl + 4, orig + 4) + pkt)
open(path, "wb").write(hdr + b"".join(out))
EOF
cat > "$WORK/facts.py" <<'EOF'
# facts.py FILE... : print, per TCP connection, the facts tshark shows (markdown)
import subprocess, sys, collections
ALERT = {"0":"close_notify","10":"unexpected_message","20":"bad_record_mac","40":"handshake_failure",
         "42":"bad_certificate","43":"unsupported_certificate","44":"certificate_revoked","45":"certificate_expired",
         "46":"certificate_unknown","48":"unknown_ca","70":"protocol_version","71":"insufficient_security",
         "80":"internal_error","86":"inappropriate_fallback","90":"user_canceled","109":"missing_extension","112":"unrecognized_name"}
FAIL = {"0x00000001":"SSL_REQUIRED_BY_SERVER","0x00000002":"SSL_NOT_ALLOWED_BY_SERVER","0x00000003":"SSL_CERT_NOT_ON_SERVER",
        "0x00000004":"INCONSISTENT_FLAGS","0x00000005":"HYBRID_REQUIRED_BY_SERVER","0x00000006":"SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER"}
PROTO = {"0x00000000":"PROTOCOL_RDP","0x00000001":"PROTOCOL_SSL","0x00000002":"PROTOCOL_HYBRID","0x00000003":"SSL|HYBRID",
         "0x0000000b":"SSL|HYBRID|HYBRID_EX","0x00000008":"PROTOCOL_HYBRID_EX","0x00000004":"PROTOCOL_RDSTLS"}
CIPH = {"0x1301":"TLS_AES_128_GCM_SHA256","0x1302":"TLS_AES_256_GCM_SHA384","0x1303":"TLS_CHACHA20_POLY1305_SHA256","0xc030":"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384","0xc02f":"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256","0x002f":"TLS_RSA_WITH_AES_128_CBC_SHA"}
TLSV = {"0x0301":"TLS1.0","0x0302":"TLS1.1","0x0303":"TLS1.2","0x0304":"TLS1.3"}
def tshark(f, decode, fields, filt=None):
    cmd = ["tshark", "-r", f, "-d", decode, "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,", "-E", "separator=\t"]
    if filt: cmd += ["-Y", filt]
    for x in fields: cmd += ["-e", x]
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    return [dict(zip(fields, l.split("\t"))) for l in out.splitlines()]
def first(v): return v.split(",")[0] if v else ""
for f in sys.argv[1:]:
    syn = tshark(f, "tcp.port==3389,tpkt", ["tcp.dstport"], "tcp.flags.syn==1 && tcp.flags.ack==0")
    port = first(syn[0]["tcp.dstport"]) if syn else "3389"
    F1 = ["frame.number","tcp.stream","ip.src","ipv6.src","tcp.srcport","ip.dst","ipv6.dst","tcp.dstport",
          "tcp.flags.syn","tcp.flags.ack","tcp.flags.fin","tcp.flags.reset","cotp.type","rdp.rt_cookie",
          "rdp.negReq.requestedProtocols","rdp.negReq.selectedProtocol","rdp.negFailure.failureCode","icmp.type","icmp.code",
          "icmpv6.type","icmpv6.code","tcp.len","frame.time_relative","tcp.analysis.retransmission","_ws.col.Info"]
    F2 = ["frame.number","tls.handshake.type","tls.handshake.version","tls.handshake.extensions.supported_version",
          "tls.handshake.ciphersuite","tls.alert_message.desc","tls.record.content_type"]
    rows = tshark(f, "tcp.port==%s,tpkt" % port, F1)
    tls = {r["frame.number"]: r for r in tshark(f, "tcp.port==%s,tls" % port, F2)}
    streams = collections.OrderedDict(); icmp = []
    for r in rows:
        src = first(r["ip.src"]) or first(r["ipv6.src"])
        if r["icmp.type"] or r["icmpv6.type"]:
            icmp.append("frame %s: ICMP%s type %s code %s from %s (quoting %s:%s -> %s:%s)" % (
                r["frame.number"], "v6" if r["icmpv6.type"] else "", first(r["icmp.type"] or r["icmpv6.type"]),
                first(r["icmp.code"] or r["icmpv6.code"]), src, r["ip.src"].split(",")[-1], first(r["tcp.srcport"]),
                r["ip.dst"].split(",")[-1], first(r["tcp.dstport"])))
            continue
        s = streams.setdefault(r["tcp.stream"], {"rows": []}); s["rows"].append((r, src))
    print("### facts: %s  (server port %s)\n" % (f.split("/")[-1], port))
    print("- total frames: %d\n" % len(rows))
    for i in icmp: print("- " + i)
    for sid, s in streams.items():
        R = s["rows"]; r0, src0 = R[0]
        cl = None; out = []
        for r, src in R:
            if r["tcp.flags.syn"] == "1" and r["tcp.flags.ack"] == "0":
                if cl is None:
                    cl = src; dst = first(r["ip.dst"]) or first(r["ipv6.dst"])
                    out.append("- connection: %s:%s -> %s:%s" % (src, r["tcp.srcport"], dst, r["tcp.dstport"]))
                    out.append("- SYN: frame %s" % r["frame.number"])
                elif r["tcp.analysis.retransmission"]:
                    out.append("- SYN retransmitted: frame %s (t=%.3f s)" % (r["frame.number"], float(r["frame.time_relative"])))
            if r["tcp.flags.syn"] == "1" and r["tcp.flags.ack"] == "1":
                out.append("- SYN-ACK: frame %s" % r["frame.number"])
        if cl is None: cl = src0
        who = lambda src: "client" if src == cl else "server"
        fin_seen = False
        for r, src in R:
            n = r["frame.number"]; t = tls.get(n, {})
            ct = r["cotp.type"]
            if ct == "0x0e":
                rp = r["rdp.negReq.requestedProtocols"]
                out.append("- X.224 CR: frame %s, cookie %r, %s" % (n, r["rdp.rt_cookie"].strip(),
                           ("RDP_NEG_REQ requestedProtocols=%s (%s)" % (rp, PROTO.get(rp, "?"))) if rp else "no RDP_NEG_REQ (legacy request)"))
            elif ct == "0x0d":
                sp, fc = r["rdp.negReq.selectedProtocol"], r["rdp.negFailure.failureCode"]
                if fc: d = "RDP_NEG_FAILURE failureCode=%s (%s)" % (fc, FAIL.get(fc, "?"))
                elif sp: d = "RDP_NEG_RSP selectedProtocol=%s (%s)" % (sp, PROTO.get(sp, "?"))
                else: d = "no negotiation data (legacy confirm)"
                out.append("- X.224 CC: frame %s, %s" % (n, d))
            if "disconnectProviderUltimatum" in r.get("_ws.col.Info",""):
                out.append("- MCS Disconnect Provider Ultimatum from %s: frame %s" % (who(src), n))
            hs = t.get("tls.handshake.type", "").split(",") if t.get("tls.handshake.type") else []
            if "1" in hs:
                sv = [TLSV.get(x, x) for x in t["tls.handshake.extensions.supported_version"].split(",") if x]
                out.append("- TLS ClientHello (%s): frame %s, legacy_version %s, supported_versions [%s], %d cipher suites" % (
                    who(src), n, TLSV.get(first(t["tls.handshake.version"]), first(t["tls.handshake.version"])), " ".join(sv),
                    len(t["tls.handshake.ciphersuite"].split(","))))
            if "2" in hs:
                sv = t["tls.handshake.extensions.supported_version"]
                ver = TLSV.get(sv, sv) if sv else TLSV.get(first(t["tls.handshake.version"]), "?")
                out.append("- TLS ServerHello (%s): frame %s, version %s, cipher %s %s" % (who(src), n, ver, first(t["tls.handshake.ciphersuite"]), CIPH.get(first(t["tls.handshake.ciphersuite"]), "")))
            if "11" in hs:
                out.append("- TLS Certificate (cleartext, %s): frame %s" % (who(src), n))
            if "21" in t.get("tls.record.content_type", "").split(","):
                d = t.get("tls.alert_message.desc", "")
                out.append("- TLS Alert from %s: frame %s, %s" % (who(src), n, ("description %s (%s)" % (d, ALERT.get(d, "?"))) if d else "encrypted (description not visible)"))
            if (r["tcp.flags.fin"] == "1" or r["tcp.flags.reset"] == "1"):
                kind = "RST" if r["tcp.flags.reset"] == "1" else "FIN"
                out.append("- %s%s from %s: frame %s (t=%.3f s)" % ("first " if not fin_seen else "", kind, who(src), n, float(r["frame.time_relative"])))
                fin_seen = True
        if not fin_seen: out.append("- no FIN/RST in the capture")
        out.append("- last frame of this connection: %s (t=%.3f s)" % (R[-1][0]["frame.number"], float(R[-1][0]["frame.time_relative"])))
        print("connection %d (tcp.stream %s):\n" % (list(streams).index(sid) + 1, sid))
        print("\n".join(out)); print()
EOF
cat > "$WORK/xclose.py" <<'EOF'
# Ask every top-level window that speaks WM_DELETE_WINDOW to close, like a
# window manager's close button: xfreerdp then disconnects cleanly.
from Xlib import display, X, protocol
d = display.Display()
proto = d.intern_atom('WM_PROTOCOLS'); delete = d.intern_atom('WM_DELETE_WINDOW')
def walk(w):
    yield w
    for c in w.query_tree().children:
        yield from walk(c)
n = 0
for w in walk(d.screen().root):
    try:
        ps = w.get_wm_protocols() or []
    except Exception:
        continue
    if delete in ps:
        w.send_event(protocol.event.ClientMessage(window=w, client_type=proto,
                     data=(32, [delete, X.CurrentTime, 0, 0, 0])), event_mask=0)
        n += 1
d.sync()
print(n)
EOF
}

# ---------------------------------------------------------------- client
# client SECONDS_BEFORE_CLOSE HOST[:PORT] xfreerdp-args...
#   SECONDS_BEFORE_CLOSE=0: let the client end by itself (bounded by 20 s);
#   otherwise close its window after that many seconds (clean disconnect).
client() {
  local wait_s=$1 target=$2; shift 2
  start_xvfb $DISP_C
  mkdir -p "$WORK/clienthome"
  ip netns exec $NSC env HOME="$WORK/clienthome" DISPLAY=$DISP_C \
     timeout 20 xfreerdp /v:"$target" /size:640x480 -grab-keyboard "$@" \
     >"$WORK/client.log" 2>&1 </dev/null &
  local cpid=$!
  if [[ $wait_s != 0 ]]; then
    sleep "$wait_s"
    DISPLAY=$DISP_C $PY "$WORK/xclose.py" >/dev/null 2>&1
  fi
  wait $cpid; CLIENT_RC=$?
  rm -rf "$WORK/clienthome/.config/freerdp"   # no remembered certificates
}

# ---------------------------------------------------------------- summary
summary() {  # one line per scenario
  local f=$OUT/$1.pcap port=${2:-3389}
  local n size cc alerts fin
  n=$(capinfos -c -M "$f" 2>/dev/null | awk '/Number of packets/{print $NF}')
  size=$(stat -c %s "$f")
  cc=$(tshark -r "$f" -d tcp.port==$port,tpkt -Y 'cotp.type==0x0d' -T fields \
        -e frame.number -e rdp.negReq.selectedProtocol -e rdp.negFailure.failureCode 2>/dev/null | head -1 | tr '\t' ' ')
  alerts=$(tshark -r "$f" -d tcp.port==$port,tls -Y tls.alert_message -T fields \
        -e frame.number -e tls.alert_message.desc 2>/dev/null | tr '\t\n' ': ')
  fin=$(tshark -r "$f" -Y 'tcp.flags.fin==1 || tcp.flags.reset==1' -T fields \
        -e frame.number -e ip.src -e ipv6.src -e tcp.flags.str 2>/dev/null | head -1 | tr -s '\t' ' ')
  printf '%-26s %7d bytes %4d frames  CC[%s] alerts[%s] firstFIN/RST[%s] client_rc=%s %s\n' \
    "$1" "$size" "$n" "$cc" "$alerts" "$fin" "${CLIENT_RC:-}" "${VLAN_NOTE:-}"
}

# ---------------------------------------------------------------- scenarios
# No credentials for xrdp: without sesman it would try an auto-login, block ~4 s
# connecting to sesman and show an error; without them it shows its login screen.
XR_TLS=(/sec:tls /cert:ignore)

sc_tls-success() {
  net_up; start_xrdp tls; cap_start x.pcap
  client 4 $S4 "${XR_TLS[@]}"; sleep 3; cap_stop tls-success
}
sc_tls12-success() {
  net_up; start_xrdp tls "ssl_protocols=TLSv1.2"; cap_start x.pcap
  client 4 $S4 "${XR_TLS[@]}"; sleep 3; cap_stop tls12-success
}
sc_rdp-std-security-success() {
  # crypt_level=fips: with low/medium/high xrdp 0.9.21 rejects FreeRDP 2.11's
  # first encrypted PDU ("MAC checksum error"), see rdp-std-security-mac-error
  net_up; start_xrdp rdp crypt_level=fips; cap_start x.pcap
  client 4 $S4 /sec:rdp; sleep 3; cap_stop rdp-std-security-success
}
sc_rdp-std-security-mac-error() {
  net_up; start_xrdp rdp crypt_level=high; cap_start x.pcap
  client 4 $S4 /sec:rdp; sleep 1; cap_stop rdp-std-security-mac-error
}
sc_neg-ssl-required() {
  # client = rawclient.py (RDP_NEG_REQ requestedProtocols=0), server = real xrdp
  net_up; start_xrdp tls; cap_start x.pcap
  ip netns exec $NSC $PY "$WORK/rawclient.py" $S4 3389 0 >"$WORK/client.log" 2>&1; CLIENT_RC=$?
  cap_stop neg-ssl-required
}
sc_neg-ssl-required-legacy() {
  # FreeRDP /sec:rdp sends a CR without RDP_NEG_REQ; xrdp (TLS only) answers a bare CC
  net_up; start_xrdp tls; cap_start x.pcap
  client 0 $S4 /sec:rdp; cap_stop neg-ssl-required-legacy
}
sc_neg-ssl-not-allowed() {
  # freerdp-shadow-cli (Standard RDP Security only) sends SSL_NOT_ALLOWED_BY_SERVER
  net_up; start_shadow rdp; cap_start x.pcap
  client 0 $S4 "${XR_TLS[@]}"; cap_stop neg-ssl-not-allowed
}
sc_xrdp-rdp-only-tls-client() {
  # xrdp security_layer=rdp does not send a failure: it selects PROTOCOL_RDP
  net_up; start_xrdp rdp; cap_start x.pcap
  client 0 $S4 "${XR_TLS[@]}"; cap_stop xrdp-rdp-only-tls-client
}
sc_neg-hybrid-required() {
  net_up; start_shadow nla; cap_start x.pcap
  client 0 $S4 "${XR_TLS[@]}"; cap_stop neg-hybrid-required
}
sc_nla-success() {
  net_up; start_shadow nla; cap_start x.pcap
  client 4 $S4 /sec:nla /cert:ignore /u:$RDP_USER /p:$RDP_PASS; sleep 1.5; cap_stop nla-success
}
sc_nla-wrong-password() {
  net_up; start_shadow nla; cap_start x.pcap
  client 0 $S4 /sec:nla /cert:ignore /u:$RDP_USER /p:WrongPassword; cap_stop nla-wrong-password
}
sc_port-closed() {
  net_up; cap_start x.pcap
  client 0 $S4 "${XR_TLS[@]}"; cap_stop port-closed
}
sc_filtered-drop() {
  net_up
  ip netns exec $NSS iptables -A INPUT -p tcp --dport 3389 -j DROP
  cap_start x.pcap
  client 0 $S4 "${XR_TLS[@]}" /timeout:8000; cap_stop filtered-drop
}
sc_icmp-reject() {
  net_up
  ip netns exec $NSS iptables -A INPUT -p tcp --dport 3389 -j REJECT --reject-with icmp-port-unreachable
  cap_start x.pcap
  client 0 $S4 "${XR_TLS[@]}" /timeout:8000; cap_stop icmp-reject
}
sc_icmp-admin-prohibited() {
  net_up
  ip netns exec $NSS iptables -A INPUT -p tcp --dport 3389 -j REJECT --reject-with icmp-admin-prohibited
  cap_start x.pcap
  client 0 $S4 "${XR_TLS[@]}" /timeout:8000; cap_stop icmp-admin-prohibited
}
sc_silent-server() {
  net_up; start_py silent; cap_start x.pcap
  client 0 $S4 "${XR_TLS[@]}" /timeout:8000; cap_stop silent-server
}
sc_server-close-after-accept() {
  net_up; start_py close; cap_start x.pcap
  client 0 $S4 "${XR_TLS[@]}"; cap_stop server-close-after-accept
}
sc_server-reset-after-accept() {
  net_up; start_py reset; cap_start x.pcap
  client 0 $S4 "${XR_TLS[@]}"; cap_stop server-reset-after-accept
}
sc_other-service() {
  net_up; start_py http; cap_start x.pcap
  client 0 $S4 "${XR_TLS[@]}"; cap_stop other-service
}
sc_other-service-ssh() {
  net_up; start_py ssh; cap_start x.pcap
  client 0 $S4 "${XR_TLS[@]}"; cap_stop other-service-ssh
}
sc_tls-version-mismatch() {
  net_up; start_xrdp tls "ssl_protocols=TLSv1.3"; cap_start x.pcap
  client 0 $S4 "${XR_TLS[@]}" +enforce-tlsv1_2; cap_stop tls-version-mismatch
}
sc_tls-no-shared-cipher() {
  net_up; start_xrdp tls "ssl_protocols=TLSv1.2" "tls_ciphers=ECDHE-RSA-AES256-GCM-SHA384"; cap_start x.pcap
  client 0 $S4 "${XR_TLS[@]}" /tls-ciphers:AES128-SHA; cap_stop tls-no-shared-cipher
}
sc_cert-rejected() {
  # TLS 1.2 so that the certificate is visible in the capture
  net_up; start_xrdp tls "ssl_protocols=TLSv1.2"; cap_start x.pcap
  client 0 $S4 /sec:tls /cert:deny; cap_stop cert-rejected
}
sc_cert-rejected-tls13() {
  net_up; start_xrdp tls; cap_start x.pcap
  client 0 $S4 /sec:tls /cert:deny; cap_stop cert-rejected-tls13
}
sc_nonstandard-port() {
  net_up; start_xrdp tls port=13389; cap_start x.pcap
  client 4 $S4:13389 "${XR_TLS[@]}"; sleep 3; cap_stop nonstandard-port
}
sc_ipv6-success() {
  net_up; start_xrdp tls; cap_start x.pcap
  client 4 "[$S6]" "${XR_TLS[@]}"; sleep 3; cap_stop ipv6-success
}
sc_vlan() {
  # The kernel here has no 8021q support ("ip link add ... type vlan" fails:
  # Unknown device type), so the VLAN sub-interfaces cannot be created.  If
  # they can, the real thing is captured; otherwise the real neg-ssl-required-legacy
  # style exchange is captured untagged and an 802.1Q tag (VLAN 100) is
  # inserted into every Ethernet frame afterwards
  # (same exchange as neg-ssl-required-legacy: FreeRDP /sec:rdp vs xrdp TLS-only) (vlan_tag.py).  See README.
  net_up vlan
  if ip -n $NSC link show c0.100 >/dev/null 2>&1; then
    start_xrdp tls; cap_start x.pcap c0
    client 0 $VS4 /sec:rdp; cap_stop vlan
  else
    start_xrdp tls; cap_start x.pcap c0
    client 0 $S4 /sec:rdp; cap_stop vlan
    $PY "$WORK/vlan_tag.py" "$OUT/vlan.pcap" 100
    VLAN_NOTE="(tags inserted afterwards: no 8021q in this kernel)"
  fi
}
sc_mtu-blackhole() {
  # client -- router -- server.  The router's client-side link has MTU 1200 and
  # the router's ICMP "fragmentation needed" messages are dropped, so every
  # server->client packet above 1200 bytes (DF set) silently vanishes, small
  # ones pass: a path-MTU black hole.  Capture on the client's veth.
  net_up_router; start_xrdp tls
  ip -n $NSR link set r0 mtu 1200
  ip netns exec $NSR iptables -A OUTPUT -p icmp --icmp-type fragmentation-needed -j DROP
  cap_start x.pcap
  client 0 10.78.0.2 "${XR_TLS[@]}" /timeout:8000; cap_stop mtu-blackhole
}
sc_sll() {   # tcpdump -i any: Linux cooked capture v2 (SLL2, tcpdump 4.99 default)
  net_up; start_xrdp tls; cap_start x.pcap any
  client 0 $S4 /sec:rdp; cap_stop sll
}
sc_sll1() {  # tcpdump -i any -y LINUX_SLL: Linux cooked capture v1
  net_up; start_xrdp tls; cap_start x.pcap any -y LINUX_SLL
  client 0 $S4 /sec:rdp; cap_stop sll1
}

# ---------------------------------------------------------------- main
# write_helpers must run before facts.py is used
if [[ ${1:-} == --list ]]; then printf '%s\n' "${ALL_SCENARIOS[@]}"; exit 0; fi
if [[ ${1:-} == --facts ]]; then   # --facts FILE... : per-connection facts (markdown) as in README.md
  shift; write_helpers; $PY "$WORK/facts.py" "$@"; exit 0
fi
[[ $(id -u) == 0 ]] || { echo "run as root" >&2; exit 1; }
need_pkgs
write_helpers
SCEN=("$@"); ((${#SCEN[@]})) || SCEN=("${ALL_SCENARIOS[@]}")
rc=0
for s in "${SCEN[@]}"; do
  if ! declare -F "sc_$s" >/dev/null; then echo "$s: unknown scenario" >&2; rc=1; continue; fi
  CLIENT_RC= VLAN_NOTE=
  "sc_$s" </dev/null
  scen_cleanup
  case $s in nonstandard-port) summary "$s" 13389 ;; *) summary "$s" ;; esac
done
exit $rc
