#!/usr/bin/env bash
# Regenerate the key-logged RDP captures testdata/own/keylog-*.pcapng.
#
#   sudo testdata/own/keylog/make-keylog-captures.sh            # all
#   sudo testdata/own/keylog/make-keylog-captures.sh keylog-nla-wrong-password
#   testdata/own/keylog/make-keylog-captures.sh --list
#
# Same set-up as ../make-captures.sh (two network namespaces joined by a veth
# pair, tcpdump on the client's veth, nothing leaves the machine), but the
# client xfreerdp runs with LD_PRELOAD=sslkeylog.so (built here from
# sslkeylog.c) and SSLKEYLOGFILE set, so its TLS secrets are logged.  The key
# log is then embedded in the capture as a pcapng Decryption Secrets Block:
#     editcap --inject-secrets tls,KEYLOG in.pcap out.pcapng
# For keylog-nla-wrong-password the plain pcap and its key log are also kept
# in this directory (for `rdpdiag analyze --keylog`); for the RSA key-exchange
# scenarios (keylog-tls11-rsa, keylog-tls12-rsa) the plain pcap is kept here, to be
# decrypted with the server's fixed test key rsa-kex-server.key (`--rsa-key`).
# TLS 1.0/1.1 need OpenSSL security level 0 on both sides (xrdp: @SECLEVEL=0 in
# tls_ciphers; xfreerdp: /tls-seclevel:0).
#
# Environment: KEEP_WORK=1 keeps the work directory (logs, raw pcaps, key logs).
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$(cd "$HERE/.." && pwd)
WORK=$(mktemp -d /tmp/rdpdiag-keylog.XXXXXX)
chmod 755 "$WORK"
PY=/usr/bin/python3
NSC=rdpkc NSS=rdpks                 # own namespace names (no clash with make-captures.sh)
C4=10.77.0.2 S4=10.77.0.1
DISP_C=:73 DISP_S=:74
RDP_USER=rdpuser RDP_PASS='Passw0rd!'
ALL=(keylog-tls-success keylog-tls12-success keylog-nla-success keylog-nla-wrong-password
     keylog-cert-rejected keylog-server-ended keylog-tls10-success keylog-tls11-rsa
     keylog-tls12-rsa)

SCEN_PIDS=() GLOBAL_PIDS=()
log() { echo "[keylog] $*" >&2; }

bg() {   # bg NAME cmd... : own process group, log to WORK/NAME.log
  local name=$1; shift
  setsid "$@" >"$WORK/$name.log" 2>&1 </dev/null &
  SCEN_PIDS+=($!); LAST_PID=$!
}
kill_group() {
  local pid=$1
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
  for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -KILL -- "-$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
}
net_down() { ip netns del $NSC 2>/dev/null; ip netns del $NSS 2>/dev/null; return 0; }
scen_cleanup() {
  local i
  for ((i=${#SCEN_PIDS[@]}-1; i>=0; i--)); do kill_group "${SCEN_PIDS[i]}"; done
  SCEN_PIDS=(); net_down
}
cleanup() {
  trap - EXIT INT TERM
  scen_cleanup
  local p; for p in "${GLOBAL_PIDS[@]}"; do kill_group "$p"; done
  if [[ ${KEEP_WORK:-0} == 1 ]]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() {
  local i
  for i in $(seq 1 50); do
    ip netns exec "$1" ss -Hltn "sport = :$2" 2>/dev/null | grep -q LISTEN && return 0
    sleep 0.1
  done
  log "nothing listening on port $2 in $1"; return 1
}
net_up() {
  net_down
  ip netns add $NSC; ip netns add $NSS
  ip link add c0 netns $NSC type veth peer name s0 netns $NSS
  local ns dev a4
  for ns in $NSC $NSS; do
    if [[ $ns == "$NSC" ]]; then dev=c0 a4=$C4; else dev=s0 a4=$S4; fi
    ip -n $ns link set lo up
    ip netns exec $ns sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    ip -n $ns link set $dev up
    ip -n $ns addr add $a4/24 dev $dev
    ip netns exec $ns ethtool -K $dev tso off gso off gro off tx off rx off >/dev/null 2>&1
  done
  ip netns exec $NSC ping -c1 -W1 $S4 >/dev/null 2>&1
  return 0
}
cap_start() {
  CAP_FILE=$WORK/raw.pcap; rm -f "$CAP_FILE"
  bg tcpdump ip netns exec $NSC tcpdump -Z root -i c0 -s 0 -U --immediate-mode -w "$CAP_FILE" tcp
  CAP_PID=$LAST_PID
  local i; for i in $(seq 1 50); do grep -q 'listening on' "$WORK/tcpdump.log" && break; sleep 0.1; done
  sleep 0.3
}
# cap_stop NAME [LAST_FRAME] : stop tcpdump, trim to frames 1..LAST_FRAME (editcap -r),
# embed the key log (DSB) and write OUT/NAME.pcapng
cap_stop() {
  local name=$1 last=${2:-}
  sleep 1
  kill -INT "$CAP_PID" 2>/dev/null; wait "$CAP_PID" 2>/dev/null
  local src=$CAP_FILE
  if [[ -n $last ]]; then editcap -r "$CAP_FILE" "$WORK/trim.pcap" "1-$last"; src=$WORK/trim.pcap; fi
  cp "$src" "$WORK/$name.pcap"; cp "$KEYLOG" "$WORK/$name.keylog"
  if [[ ! -s $KEYLOG ]]; then log "$name: key log is empty"; fi
  editcap --inject-secrets "tls,$KEYLOG" "$src" "$OUT/$name.pcapng"
  chmod 644 "$OUT/$name.pcapng"
}
mk_cert() {
  [[ -f $WORK/cert.pem ]] && return
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/key.pem" -out "$WORK/cert.pem" \
    -days 3650 -subj /CN=rdpdiag-test-server >/dev/null 2>&1
}
start_xrdp() {   # start_xrdp [key=value ...]  (security_layer=tls)
  mk_cert
  local ini=$WORK/xrdp.ini kv k v
  sed -e "s/^security_layer=.*/security_layer=tls/" \
      -e "s#^certificate=.*#certificate=$WORK/cert.pem#" \
      -e "s#^key_file=.*#key_file=$WORK/key.pem#" \
      -e "s#^LogFile=.*#LogFile=$WORK/xrdp-server.log#" \
      -e "s/^EnableSyslog=.*/EnableSyslog=false/" /etc/xrdp/xrdp.ini > "$ini"
  for kv in "$@"; do
    k=${kv%%=*} v=${kv#*=}
    if grep -q "^#\?$k=" "$ini"; then sed -i "0,/^#\?$k=.*/s##$k=$v#" "$ini"
    else sed -i "/^\[Globals\]/a $k=$v" "$ini"; fi
  done
  rm -f /var/run/xrdp/xrdp.pid /var/run/xrdp.pid; mkdir -p /var/run/xrdp
  bg xrdp ip netns exec $NSS xrdp --nodaemon --config "$ini"
  XRDP_PID=$LAST_PID
  wait_port $NSS 3389
}
start_xvfb() {
  local d=$1 n=${1#:}
  [[ -S /tmp/.X11-unix/X$n ]] && return
  setsid Xvfb "$d" -screen 0 800x600x24 -nolisten tcp -noreset >"$WORK/xvfb$n.log" 2>&1 </dev/null &
  GLOBAL_PIDS+=($!)
  local i; for i in $(seq 1 50); do [[ -S /tmp/.X11-unix/X$n ]] && break; sleep 0.1; done
}
start_shadow() {   # freerdp-shadow-cli /sec:nla with a SAM file (User::LM:NT:::)
  start_xvfb $DISP_S
  local nt
  nt=$(printf '%s' "$RDP_PASS" | iconv -f utf-8 -t utf-16le | openssl dgst -md4 -provider legacy -provider default -r | cut -d' ' -f1)
  printf '%s::%s:%s:::\n' "$RDP_USER" "aad3b435b51404eeaad3b435b51404ee" "$nt" > "$WORK/sam"
  mkdir -p "$WORK/shadowhome"
  bg shadow ip netns exec $NSS env HOME="$WORK/shadowhome" DISPLAY=$DISP_S \
     freerdp-shadow-cli /port:3389 /sec:nla /sam-file:"$WORK/sam" -may-interact
  SHADOW_PID=$LAST_PID
  wait_port $NSS 3389
}
write_xclose() {
cat > "$WORK/xclose.py" <<'PYEOF'
# send WM_DELETE_WINDOW to every window that accepts it (window close button)
from Xlib import display, X, protocol
d = display.Display()
proto = d.intern_atom('WM_PROTOCOLS'); delete = d.intern_atom('WM_DELETE_WINDOW')
def walk(w):
    yield w
    for c in w.query_tree().children:
        yield from walk(c)
for w in walk(d.screen().root):
    try:
        ps = w.get_wm_protocols() or []
    except Exception:
        continue
    if delete in ps:
        w.send_event(protocol.event.ClientMessage(window=w, client_type=proto,
                     data=(32, [delete, X.CurrentTime, 0, 0, 0])), event_mask=0)
d.sync()
PYEOF
}
# client_start xfreerdp-args... : key-logged xfreerdp in the client ns, bounded by timeout 20
client_start() {
  start_xvfb $DISP_C
  mkdir -p "$WORK/clienthome"
  KEYLOG=$WORK/keys.log; rm -f "$KEYLOG"; : > "$KEYLOG"
  ip netns exec $NSC env HOME="$WORK/clienthome" DISPLAY=$DISP_C \
     LD_PRELOAD="$WORK/sslkeylog.so" SSLKEYLOGFILE="$KEYLOG" \
     timeout 20 xfreerdp /v:$S4 /size:640x480 -grab-keyboard "$@" \
     >"$WORK/client.log" 2>&1 </dev/null &
  CLIENT_PID=$!
}
client_close() { DISPLAY=$DISP_C $PY "$WORK/xclose.py" >/dev/null 2>&1; }
client_wait() { wait "$CLIENT_PID"; CLIENT_RC=$?; rm -rf "$WORK/clienthome/.config/freerdp"; }

# ---------------------------------------------------------------- scenarios
XR_TLS=(/sec:tls /cert:ignore)   # no credentials: xrdp (no sesman) shows its login screen
sc_keylog-tls-success() {        # TLS 1.3 (xrdp default), window closed after 2 s
  net_up; start_xrdp; cap_start
  client_start "${XR_TLS[@]}"; sleep 2; client_close; client_wait; cap_stop keylog-tls-success
}
sc_keylog-tls12-success() {      # same with ssl_protocols=TLSv1.2
  net_up; start_xrdp ssl_protocols=TLSv1.2; cap_start
  client_start "${XR_TLS[@]}"; sleep 2; client_close; client_wait; cap_stop keylog-tls12-success
}
sc_keylog-nla-success() {
  net_up; start_shadow; cap_start
  client_start /sec:nla /cert:ignore /u:$RDP_USER /p:$RDP_PASS; sleep 3; client_close; client_wait
  cap_stop keylog-nla-success
}
sc_keylog-nla-wrong-password() { # FreeRDP retries once: keep only the first connection
  net_up; start_shadow; cap_start
  client_start /sec:nla /cert:ignore /u:$RDP_USER /p:WrongPassword; client_wait
  local last
  last=$(tshark -r "$CAP_FILE" -Y 'tcp.stream==0' -T fields -e frame.number | tail -1)
  cap_stop keylog-nla-wrong-password "$last"
  # plain pcap + key log for `rdpdiag analyze --keylog`
  cp "$WORK/keylog-nla-wrong-password.pcap" "$WORK/keylog-nla-wrong-password.keylog" "$HERE/"
  chmod 644 "$HERE/keylog-nla-wrong-password.pcap" "$HERE/keylog-nla-wrong-password.keylog"
}
sc_keylog-cert-rejected() {      # TLS 1.2 like ../cert-rejected.pcap
  net_up; start_xrdp ssl_protocols=TLSv1.2; cap_start
  client_start /sec:tls /cert:deny; client_wait; cap_stop keylog-cert-rejected
}
sc_keylog-server-ended() {       # xrdp's per-connection child gets SIGTERM after 2 s
  net_up; start_xrdp; cap_start
  client_start "${XR_TLS[@]}"; sleep 2
  local child
  child=$(pgrep -n -P "$XRDP_PID" -x xrdp)   # xrdp forks one child per connection
  [[ -n $child ]] || { log "no xrdp child process"; client_wait; return; }
  log "SIGTERM to xrdp pid $child (session child)"
  kill -TERM "$child"
  client_wait; cap_stop keylog-server-ended
}

sc_keylog-tls10-success() {      # TLS 1.0, ECDHE-RSA-AES128-SHA (0xc013): CBC IVs chained
  net_up; start_xrdp ssl_protocols=TLSv1 'tls_ciphers=ECDHE-RSA-AES128-SHA:@SECLEVEL=0'; cap_start
  client_start "${XR_TLS[@]}" /tls-seclevel:0; sleep 2; client_close; client_wait
  cap_stop keylog-tls10-success
}
# keep_plain NAME : the capture without its key log, for --rsa-key
keep_plain() { cp "$WORK/$1.pcap" "$HERE/$1.pcap"; chmod 644 "$HERE/$1.pcap"; }
RSA_CERT=(certificate=$HERE/rsa-kex-server.crt key_file=$HERE/rsa-kex-server.key)
sc_keylog-tls11-rsa() {          # TLS 1.1, AES256-SHA (0x0035): RSA key exchange, explicit IVs
  net_up; start_xrdp ssl_protocols=TLSv1.1 'tls_ciphers=AES256-SHA:@SECLEVEL=0' "${RSA_CERT[@]}"
  cap_start
  client_start "${XR_TLS[@]}" /tls-seclevel:0; sleep 2; client_close; client_wait
  cap_stop keylog-tls11-rsa; keep_plain keylog-tls11-rsa
}
sc_keylog-tls12-rsa() {          # TLS 1.2, AES128-GCM-SHA256 (0x009c): RSA key exchange, EMS
  net_up; start_xrdp ssl_protocols=TLSv1.2 tls_ciphers=AES128-GCM-SHA256 "${RSA_CERT[@]}"
  cap_start
  client_start "${XR_TLS[@]}"; sleep 2; client_close; client_wait
  cap_stop keylog-tls12-rsa; keep_plain keylog-tls12-rsa
}

summary() {
  local f=$OUT/$1.pcapng
  printf '%-28s %7d bytes %4s frames  key-log lines %s  client_rc=%s\n' "$1" "$(stat -c %s "$f")" \
    "$(capinfos -c -M "$f" | awk '/Number of packets/{print $NF}')" "$(wc -l < "$WORK/$1.keylog")" "${CLIENT_RC:-}"
}

if [[ ${1:-} == --list ]]; then printf '%s\n' "${ALL[@]}"; exit 0; fi
[[ $(id -u) == 0 ]] || { echo "run as root" >&2; exit 1; }
for p in xrdp freerdp2-x11 freerdp2-shadow-x11 xvfb tcpdump tshark gcc python3-xlib ethtool; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || { echo "missing package $p" >&2; exit 1; }
done
gcc -shared -fPIC -O2 -Wall -o "$WORK/sslkeylog.so" "$HERE/sslkeylog.c" -ldl || exit 1
chmod 755 "$WORK/sslkeylog.so"
write_xclose
SCEN=("$@"); ((${#SCEN[@]})) || SCEN=("${ALL[@]}")
rc=0
for s in "${SCEN[@]}"; do
  declare -F "sc_$s" >/dev/null || { echo "$s: unknown scenario" >&2; rc=1; continue; }
  CLIENT_RC=
  "sc_$s" </dev/null
  scen_cleanup
  summary "$s"
done
exit $rc
