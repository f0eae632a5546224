#!/usr/bin/python3
"""A receiving MX for posta's delivery tests, on aiosmtpd: an SMTP server
independent of posta that records every message it accepts.

usage: mx_receiver.py --out DIR --listen ADDR:PORT [--listen ...]
                      [--cert CERT.pem --key KEY.pem] [--hostname NAME]
                      [--watch-stdin] [--no-smtputf8] [--data-delay SECONDS]

ADDR:PORT may be IPv6 as [::1]:25. With --cert/--key it offers STARTTLS (not
required). EHLO offers SIZE, 8BITMIME, SMTPUTF8 (not with --no-smtputf8),
PIPELINING (and STARTTLS); no AUTH. Prints "READY" once every listener is up; exits cleanly on SIGTERM,
and with --watch-stdin also when stdin closes (so a test process that dies
without stopping it does not leave port 25 taken).

What happens to a recipient depends on its local part (case-insensitive
prefix), so one receiver serves many test cases:

  reject*           RCPT: 550 5.1.1 <addr>: no such user here
  tempfailN*        RCPT: 451 4.3.0 try again later, the first N times (one
                    digit, default 1) this process sees that address; then 250
  always-tempfail*  RCPT: always 451 4.3.0 try again later
  datareject*       RCPT: 250, but the end of DATA gets 554 5.6.0 message
                    refused (the whole transaction, for every recipient)
  anything else     RCPT: 250

Any MAIL FROM is accepted, the null sender <> included. A message accepted at
the end of DATA is written to DIR as N.eml (the bytes as transmitted, after
dot-unstuffing, with CRLF line ends) and then N.json (mail_from, "" for <>;
mail_options, the parameters of MAIL FROM such as "SMTPUTF8"; rcpt_tos; tls; tls_version; peer; helo; connection; listen; time), each
through a temporary ".N.*.tmp" file and a rename, so a reader that sees
N.json can read N.eml. N counts from 1. The reply is 250 2.0.0 OK queued as N.
With --data-delay it comes that many seconds after the end of DATA (a slow
receiver, so that senders keep their connections longer).

Each TCP connection appends a line to DIR/connections.jsonl:
{"connection": ID, "peer": IP, "listen": "ADDR:PORT", "time": T}. ID is the
"connection" of the messages sent over it (and stays across STARTTLS). When
a connection ends, {"connection": ID, "time": T} is appended to
DIR/closed.jsonl.
"""
import argparse
import asyncio
import functools
import itertools
import json
import os
import re
import signal
import ssl
import sys
import threading
import time
from collections import Counter

from aiosmtpd.smtp import SMTP

TEMPFAIL = '451 4.3.0 try again later'
TEMPFAIL_N = re.compile(r'tempfail(\d?)')


class Receiver(SMTP):
    """One per TCP connection. aiosmtpd makes a new Session at STARTTLS, so
    the connection id lives here rather than on the session."""

    connection_ids = itertools.count(1)

    def __init__(self, handler, listen, **kwargs):
        super().__init__(handler, **kwargs)
        self.listen = listen
        self.connection_id = None
        self.closed = False

    def connection_made(self, transport):
        super().connection_made(transport)
        if self.connection_id is None:  # not the second call, after STARTTLS
            self.connection_id = next(self.connection_ids)
            self.event_handler.log_connection(self)

    def connection_lost(self, error):
        super().connection_lost(error)
        if self.connection_id is not None and not self.closed:
            self.closed = True
            self.event_handler.log_close(self)


class Handler:
    def __init__(self, out, data_delay=0.0):
        self.out = out
        self.data_delay = data_delay
        self.seen = Counter()  # RCPT count per tempfail address
        self.message_ids = itertools.count(1)

    def write(self, name, data):
        tmp = os.path.join(self.out, f'.{name}.tmp')
        with open(tmp, 'wb') as f:
            f.write(data)
        os.replace(tmp, os.path.join(self.out, name))

    def log_connection(self, server):
        line = {
            'connection': server.connection_id,
            'peer': server.session.peer[0],
            'listen': server.listen,
            'time': time.time(),
        }
        with open(os.path.join(self.out, 'connections.jsonl'), 'a') as f:
            f.write(json.dumps(line) + '\n')

    def log_close(self, server):
        line = {'connection': server.connection_id, 'time': time.time()}
        with open(os.path.join(self.out, 'closed.jsonl'), 'a') as f:
            f.write(json.dumps(line) + '\n')

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # With this hook aiosmtpd leaves recording the name to us.
        session.host_name = hostname
        responses = [r for r in responses if not r.startswith('250-AUTH')]
        responses.insert(-1, '250-PIPELINING')
        return responses

    async def handle_RCPT(self, server, session, envelope, address, options):
        local = address.rpartition('@')[0].lower()
        if local.startswith('reject'):
            return f'550 5.1.1 <{address}>: no such user here'
        if local.startswith('always-tempfail'):
            return TEMPFAIL
        tempfail = TEMPFAIL_N.match(local)
        if tempfail:
            self.seen[address.lower()] += 1
            if self.seen[address.lower()] <= int(tempfail.group(1) or 1):
                return TEMPFAIL
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return '250 2.1.5 OK'

    async def handle_DATA(self, server, session, envelope):
        if any(r.lower().startswith('datareject') for r in envelope.rcpt_tos):
            return '554 5.6.0 message refused'
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        n = next(self.message_ids)
        ssl_object = session.ssl and session.ssl.get('ssl_object')
        meta = {
            'mail_from': '' if envelope.mail_from == '<>' else envelope.mail_from,
            'mail_options': envelope.mail_options,
            'rcpt_tos': envelope.rcpt_tos,
            'tls': ssl_object is not None,
            'tls_version': ssl_object.version() if ssl_object else None,
            'peer': session.peer[0],
            'helo': session.host_name,
            'connection': server.connection_id,
            'listen': server.listen,
            'time': time.time(),
        }
        self.write(f'{n}.eml', envelope.original_content)
        self.write(f'{n}.json', json.dumps(meta, indent=1).encode())
        return f'250 2.0.0 OK queued as {n}'


def parse_listen(value):
    host, _, port = value.rpartition(':')
    return host.strip('[]'), int(port)


async def main():
    p = argparse.ArgumentParser(description='receiving MX for posta tests')
    p.add_argument('--out', required=True)
    p.add_argument('--listen', action='append', required=True)
    p.add_argument('--cert')
    p.add_argument('--key')
    p.add_argument('--hostname', default='mx.receiver.test')
    p.add_argument('--watch-stdin', action='store_true')
    p.add_argument('--no-smtputf8', action='store_true', help='do not offer SMTPUTF8')
    p.add_argument('--data-delay', type=float, default=0.0,
                   help='seconds to wait before the reply to the end of DATA')
    p.add_argument('--broken-tls', action='store_true',
                   help='offer STARTTLS but fail every handshake (demands a client certificate)')
    args = p.parse_args()

    tls_context = None
    if args.cert:
        tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_context.load_cert_chain(args.cert, args.key)
        if args.broken_tls:
            # A server whose STARTTLS cannot work: it demands a client
            # certificate that no sending MTA presents.
            tls_context.verify_mode = ssl.CERT_REQUIRED
            tls_context.load_verify_locations(cafile=args.cert)
    os.makedirs(args.out, exist_ok=True)
    handler = Handler(args.out, args.data_delay)
    loop = asyncio.get_running_loop()
    options = dict(
        hostname=args.hostname,
        data_size_limit=100 * 1024 * 1024,
        enable_SMTPUTF8=not args.no_smtputf8,
        decode_data=False,
        tls_context=tls_context,
        require_starttls=False,
        loop=loop,
    )
    servers = []
    for listen in args.listen:
        factory = functools.partial(Receiver, handler, listen, **options)
        servers.append(await loop.create_server(factory, *parse_listen(listen)))

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.watch_stdin:
        def watch():
            sys.stdin.buffer.read()
            loop.call_soon_threadsafe(stop.set)
        threading.Thread(target=watch, daemon=True).start()
    print('READY', flush=True)
    await stop.wait()
    for server in servers:
        server.close()


if __name__ == '__main__':
    asyncio.run(main())
