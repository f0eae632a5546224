#!/usr/bin/python3
"""An authoritative DNS server for tests, on loopback: serves the records of a
zone file (RFC 1035 master format, parsed by dnslib) over UDP and TCP.

Unlike dnslib's own ZoneResolver it answers like a real server: NOERROR with no
answer for a name that exists without the asked type, NXDOMAIN for a name that
does not exist, CNAMEs followed within the zone. Names listed in a comment line
"; servfail NAME." get SERVFAIL, to test temporary DNS failures. The zone file
is read again when it changes, so a test can add records as it goes.

usage: dns_server.py ZONEFILE ADDRESS PORT   (prints "ready" when listening)
"""
import os
import threading
import sys
import time

from dnslib import QTYPE, RCODE, RR, DNSLabel
from dnslib.server import BaseResolver, DNSLogger, DNSServer


class Reloading(BaseResolver):
    """Answers from the zone file as it is now."""

    def __init__(self, path):
        self.path = path
        # One thread at a time checks the file and swaps the zone: without
        # the lock a thread that read an older file could swap it in after a
        # newer one, and another thread answer from it.
        self.lock = threading.Lock()
        st = os.stat(path)
        self.mtime = (st.st_mtime_ns, st.st_ino, st.st_size)
        with open(path) as f:
            self.zone = Zone(f.read())  # a broken zone fails at start

    def resolve(self, request, handler):
        with self.lock:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_ino, st.st_size)
            if stamp != self.mtime:
                try:
                    with open(self.path) as f:
                        self.zone = Zone(f.read())
                except Exception as e:  # keep answering from the previous zone
                    print('zone reload failed:', e, file=sys.stderr, flush=True)
                self.mtime = stamp
            zone = self.zone
        return zone.resolve(request, handler)


class Zone(BaseResolver):
    def __init__(self, text):
        self.records = list(RR.fromZone(text))
        self.names = {str(rr.rname).lower() for rr in self.records}
        self.servfail = {
            line.split()[2].lower()
            for line in text.splitlines()
            if line.strip().startswith('; servfail ')
        }

    def lookup(self, name, qtype):
        return [
            rr
            for rr in self.records
            if str(rr.rname).lower() == name and (qtype == 'ANY' or QTYPE[rr.rtype] == qtype)
        ]

    def resolve(self, request, handler):
        reply = request.reply()
        name = str(request.q.qname).lower()
        qtype = QTYPE[request.q.qtype]
        if name in self.servfail:
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        for _ in range(8):
            answers = self.lookup(name, qtype)
            if answers:
                for rr in answers:
                    reply.add_answer(rr)
                return reply
            cname = self.lookup(name, 'CNAME')
            if not cname or qtype == 'CNAME':
                break
            reply.add_answer(cname[0])
            name = str(cname[0].rdata.label).lower()
        if name not in self.names and not reply.rr:
            reply.header.rcode = RCODE.NXDOMAIN
        reply.header.aa = 1
        return reply


def main():
    zonefile, address, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    zone = Reloading(zonefile)
    logger = DNSLogger(log='-request,-reply,-truncated,+error', prefix=False)
    servers = [
        DNSServer(zone, address=address, port=port, logger=logger),
        DNSServer(zone, address=address, port=port, tcp=True, logger=logger),
    ]
    for s in servers:
        s.start_thread()
    print('ready', flush=True)
    try:
        while sys.stdin.read(1):
            pass
    except KeyboardInterrupt:
        pass


if __name__ == '__main__':
    main()
