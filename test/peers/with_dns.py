#!/usr/bin/python3
"""Run one of dkimpy's command-line verifiers (dkimverify, arcverify) with its
DNS lookups sent to the test DNS server instead of /etc/resolv.conf.

dkimverify-all checks every DKIM-Signature of the message (dkimverify checks
only the first) and prints one line per signature: "N d=DOMAIN a=ALGO ok".

spf IP SENDER HELO evaluates SPF with pyspf (python3-spf) as a receiver
would (RFC 7208 §2.3: an empty SENDER checks postmaster@HELO) and prints
"RESULT EXPLANATION"; it exits 0 only for pass.

usage: with_dns.py ADDRESS PORT dkimverify|dkimverify-all|arcverify [ARGS...] < message
       with_dns.py ADDRESS PORT spf IP SENDER HELO
"""
import sys

import dns.resolver

address, port, tool = sys.argv[1], int(sys.argv[2]), sys.argv[3]
resolver = dns.resolver.Resolver(configure=False)
resolver.nameservers = [address]
resolver.port = port
dns.resolver.default_resolver = resolver

sys.argv = [tool] + sys.argv[4:]


def verify_all():
    import re

    import dkim

    message = sys.stdin.buffer.read()
    header = message.split(b'\r\n\r\n', 1)[0]
    count = len(re.findall(rb'^DKIM-Signature:', header, re.I | re.M))
    if count == 0:
        sys.exit('no DKIM-Signature')
    failed = False
    for i in range(count):
        d = dkim.DKIM(message)
        ok = d.verify(idx=i)
        print(i, 'd=' + (d.domain or b'').decode(), 'a=' + (d.signature_fields.get(b'a', b'') or b'').decode(), 'ok' if ok else 'FAIL')
        failed = failed or not ok
    sys.exit(1 if failed else 0)


if tool == 'spf':
    import spf

    result, explanation = spf.check2(i=sys.argv[1], s=sys.argv[2], h=sys.argv[3])
    print(result, explanation)
    sys.exit(0 if result == 'pass' else 1)
if tool == 'dkimverify-all':
    verify_all()
    sys.exit(0)
if tool == 'dkimverify':
    from dkim.dkimverify import main
elif tool == 'arcverify':
    from dkim.arcverify import main
else:
    sys.exit('unknown tool ' + tool)
main()
