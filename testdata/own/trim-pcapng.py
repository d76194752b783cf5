#!/usr/bin/env python3
"""Keep the first N packets of a pcapng file, with every non-packet block (section header,
interfaces, Decryption Secrets Blocks) in place: `trim-pcapng.py IN OUT N`. editcap 4.0
refuses to rewrite pcapng files that carry Decryption Secrets Blocks."""
import struct, sys

src, dst, keep = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = open(src, "rb").read()
endian = "<" if data[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
out, off, packets = bytearray(), 0, 0
while off + 12 <= len(data):
    btype, blen = struct.unpack_from(endian + "II", data, off)
    block = data[off:off + blen]
    if btype in (3, 6, 2):  # simple, enhanced, obsolete packet blocks
        packets += 1
        if packets <= keep:
            out += block
    else:
        out += block
    off += blen
open(dst, "wb").write(out)
