"""AUTH PLAIN attempts on a submission port after STARTTLS, all at once.

Reads JSON from stdin: {"host", "port", "attempts": [{"src", "user", "password"}]}
Each attempt is its own connection from its own source address (the client
socket is bound to "src", a 127.x.y.z). Prints a JSON list with the AUTH reply
code of each attempt, in order (-1 when the session broke before it).
"""
import base64
import json
import smtplib
import ssl
import sys
import threading

job = json.load(sys.stdin)
codes = [-1] * len(job["attempts"])
go = threading.Barrier(len(job["attempts"]))


def attempt(i, a):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with smtplib.SMTP(job["host"], job["port"], source_address=(a["src"], 0), timeout=120) as c:
            c.ehlo("client.test")
            c.starttls(context=ctx)
            c.ehlo("client.test")
            token = base64.b64encode(f"\0{a['user']}\0{a['password']}".encode()).decode()
            go.wait(timeout=120)  # every session is ready: send the AUTH commands together
            codes[i] = c.docmd("AUTH", "PLAIN " + token)[0]
    except Exception as e:  # noqa: BLE001 - the code says it broke
        print(f"attempt {i} from {a['src']}: {e}", file=sys.stderr)
        try:
            go.abort()
        except Exception:
            pass


threads = [threading.Thread(target=attempt, args=(i, a)) for i, a in enumerate(job["attempts"])]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(codes))
