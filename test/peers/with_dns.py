#!/usr/bin/python3
"""Run one of dkimpy's command-line verifiers (dkimverify, arcverify) with its
DNS lookups sent to the test DNS server instead of /etc/resolv.conf.

usage: with_dns.py ADDRESS PORT dkimverify|arcverify [ARGS...] < message
"""
import sys

import dns.resolver

address, port, tool = sys.argv[1], int(sys.argv[2]), sys.argv[3]
resolver = dns.resolver.Resolver(configure=False)
resolver.nameservers = [address]
resolver.port = port
dns.resolver.default_resolver = resolver

sys.argv = [tool] + sys.argv[4:]
if tool == 'dkimverify':
    from dkim.dkimverify import main
elif tool == 'arcverify':
    from dkim.arcverify import main
else:
    sys.exit('unknown tool ' + tool)
main()
