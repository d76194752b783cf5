#!/usr/bin/env python3
"""Proxy fixtures for rdpdiag: a tiny SOCKS5 / HTTP CONNECT proxy on 127.0.0.1 in front of
a TCP listener that answers an X.224 Connection Request with a Connection Confirm (RDP
security selected), captured on lo with tcpdump. Run as root from the repository root:
  python3 testdata/own/make-proxy-captures.py
Writes testdata/own/socks5-rdp-local.pcap, socks5-refused.pcap, http-connect-rdp-local.pcap
and http-connect-refused.pcap."""
import signal, socket, struct, subprocess, threading, time

RDP_PORT, PROXY_PORT = 33389, 31080
# X.224 Connection Request (cookie, RDP_NEG_REQ for standard RDP security) and the
# Connection Confirm selecting it.
CR = (b"\x03\x00\x00\x2c\x27\xe0\x00\x00\x00\x00\x00Cookie: mstshash=tester\r\n"
      b"\x01\x00\x08\x00\x00\x00\x00\x00")
CC = bytes.fromhex("030000130ed000001234000200080000000000")

def rdp_server(stop):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", RDP_PORT)); s.listen(5); s.settimeout(0.2)
    while not stop.is_set():
        try:
            c, _ = s.accept()
        except socket.timeout:
            continue
        c.recv(1024); c.sendall(CC); time.sleep(0.2); c.close()
    s.close()

def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    for x in (a, b):
        try: x.shutdown(socket.SHUT_RDWR)
        except OSError: pass

def proxy(stop, mode):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", PROXY_PORT)); s.listen(5); s.settimeout(0.2)
    while not stop.is_set():
        try:
            c, _ = s.accept()
        except socket.timeout:
            continue
        if mode.startswith("socks"):
            c.recv(16); c.sendall(b"\x05\x00")
            req = c.recv(64)
            port = struct.unpack(">H", req[-2:])[0]
            if mode == "socks-refused":
                c.sendall(b"\x05\x05\x00\x01\x00\x00\x00\x00\x00\x00"); time.sleep(0.1); c.close(); continue
            u = socket.create_connection(("127.0.0.1", port))
            c.sendall(b"\x05\x00\x00\x01\x7f\x00\x00\x01" + struct.pack(">H", u.getsockname()[1]))
        else:
            head = c.recv(4096).decode()
            port = int(head.split()[1].rsplit(":", 1)[1])
            if mode == "http-refused":
                c.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"); time.sleep(0.1); c.close(); continue
            u = socket.create_connection(("127.0.0.1", port))
            c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        threading.Thread(target=pipe, args=(c, u), daemon=True).start()
        threading.Thread(target=pipe, args=(u, c), daemon=True).start()
    s.close()

def client(mode):
    # A refused CONNECT asks for the standard RDP port (the proxy never connects it).
    port = 3389 if mode.endswith("refused") else RDP_PORT
    c = socket.create_connection(("127.0.0.1", PROXY_PORT))
    if mode.startswith("socks"):
        c.sendall(b"\x05\x01\x00"); c.recv(2)
        c.sendall(b"\x05\x01\x00\x01\x7f\x00\x00\x01" + struct.pack(">H", port))
        rep = c.recv(10)
        ok = rep[1] == 0
    else:
        c.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (port, port))
        ok = b" 200 " in c.recv(4096)
    if ok:
        c.sendall(CR); c.recv(1024)
    time.sleep(0.1); c.close()

for name, mode in [("socks5-rdp-local", "socks"), ("socks5-refused", "socks-refused"),
                   ("http-connect-rdp-local", "http"), ("http-connect-refused", "http-refused")]:
    stop = threading.Event()
    ts = [threading.Thread(target=rdp_server, args=(stop,)), threading.Thread(target=proxy, args=(stop, mode))]
    for t in ts: t.start()
    dump = subprocess.Popen(["tcpdump", "-i", "lo", "-U", "-w", f"testdata/own/{name}.pcap",
                             f"tcp port {PROXY_PORT}"], stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    client(mode)
    time.sleep(1.5)
    dump.send_signal(signal.SIGINT); dump.wait()
    stop.set()
    for t in ts: t.join()
