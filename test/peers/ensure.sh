#!/usr/bin/env bash
# The test peers: every program and Python module the tests talk to, each with
# the check that proves the capability the tests use (not only that a package is
# there: swaks without Net::SSLeay runs, but cannot do TLS) and the Debian
# package that brings it. Run before `npm test` (its pretest) and by .ci/run.
#
#   bash test/peers/ensure.sh          check; as root with apt-get, install what is missing
#   bash test/peers/ensure.sh --check  check only
#
# Prints one line per missing capability and exits 1 when any is still missing.
set -uo pipefail

py=/usr/bin/python3 # Debian's python3: the one on PATH may be another build without its modules

# Debian package | capability | check (run by bash; the rest of the line)
peers=(
  "swaks|swaks|command -v swaks"
  "libnet-ssleay-perl|swaks TLS (Net::SSLeay)|swaks --support 2>&1 | grep -q '=== TLS supported'"
  "libio-socket-inet6-perl|swaks IPv6 (IO::Socket::INET6)|swaks --support 2>&1 | grep -q '=== IPv6 supported'"
  "python3|Debian's python3|test -x $py"
  "python3-dkim|python3 module dkim (dkimverify, arcverify)|$py -c 'import dkim'"
  "python3-nacl|python3 module nacl (Ed25519 DKIM)|$py -c 'import nacl.signing'"
  "python3-dnspython|python3 module dns (dnspython)|$py -c 'import dns.resolver'"
  "python3-authres|python3 module authres|$py -c 'import authres'"
  "python3-aiosmtpd|python3 module aiosmtpd (receiving MX)|$py -c 'import aiosmtpd.smtp'"
  "python3-dnslib|python3 module dnslib (DNS server)|$py -c 'import dnslib.server'"
  "python3-prometheus-client|python3 module prometheus_client|$py -c 'import prometheus_client.parser'"
  "python3-boto3|python3 modules boto3, botocore (SES API clients)|$py -c 'import boto3, botocore'"
  "python3-yaml|python3 module yaml (reads the SPF suite)|$py -c 'import yaml'"
  "python3-spf|python3 module spf (pyspf) and the RFC 7208 SPF test suite|test -r /usr/share/doc/python3-spf/rfc7208-tests.yml.gz && $py -c 'import spf'"
  "opendkim-tools|opendkim-testmsg (DKIM verification by OpenDKIM)|command -v opendkim-testmsg"
  "strace|strace may trace (the order of fsync and 250 in durability.test.ts)|strace -f -qq -e trace=fsync -o /dev/null true"
  "bind9-utils|named-checkzone|command -v named-checkzone"
  "openssl|openssl|command -v openssl"
  "pebble|pebble (ACME test CA)|command -v pebble"
  "systemd|systemd-analyze|command -v systemd-analyze"
  "bsdutils|script|command -v script"
  "util-linux|unshare and setpriv|command -v unshare && command -v setpriv"
  "mount|mount|command -v mount"
  "iproute2|ip|command -v ip"
  "passwd|useradd|command -v useradd"
  "postgresql|PostgreSQL server (initdb, pg_ctl in /usr/lib/postgresql/<version>/bin) and its postgres user|id -u postgres && for b in /usr/lib/postgresql/*/bin; do test -x \$b/initdb && test -x \$b/pg_ctl && exit 0; done; exit 1"
  "chromium|headless Chromium (the dashboard tests, through playwright-core)|chromium --headless --no-sandbox --disable-gpu --dump-dom 'data:text/html,<p>rendered</p>' 2>/dev/null | grep -q '<p>rendered</p>'"
)

missing() {
  local line name check pkg
  for line in "${peers[@]}"; do
    IFS='|' read -r pkg name check <<<"$line"
    bash -c "$check" >/dev/null 2>&1 || echo "$pkg|$name"
  done
}

absent=$(missing)
if [ -n "$absent" ] && [ "${1:-}" != --check ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  pkgs=$(cut -d'|' -f1 <<<"$absent" | sort -u | tr '\n' ' ')
  echo "test peers: installing ${pkgs% }"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
  absent=$(missing)
fi

if [ -z "$absent" ]; then
  echo "test peers: all ${#peers[@]} capabilities present"
  exit 0
fi
while IFS='|' read -r pkg name; do
  echo "test peers: missing $name (Debian package $pkg)"
done <<<"$absent"
pkgs=$(cut -d'|' -f1 <<<"$absent" | sort -u | tr '\n' ' ')
echo "test peers: as root, run: apt-get install --no-install-recommends ${pkgs% }"
exit 1
