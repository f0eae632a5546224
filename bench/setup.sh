#!/bin/sh
# Unpacks the bench's peers from Debian's packages under bench/.peers (ignored
# by git): nothing is installed, nothing starts at boot. Never
# `apt-get install postfix`: it starts a server on port 25.
# The bench also needs (Debian) strace, util-linux (unshare, taskset), iproute2.
set -eu
cd "$(dirname "$0")"
mkdir -p .peers/debs
cd .peers/debs
apt-get download postfix chasquid opendkim libmilter1.0.1 libopendkim11 \
  librbl1 libvbr2 libopendbx1 libmemcached11 liblua5.3-0
cd ..
dpkg -x debs/postfix_*.deb postfix
dpkg -x debs/chasquid_*.deb chasquid
for d in debs/opendkim_*.deb debs/lib*.deb; do dpkg -x "$d" opendkim; done
echo "peers unpacked under $(pwd)"
