"""An SMTP server for pgship's alert tests (aiosmtpd, the real protocol).

STARTTLS required before MAIL and AUTH (or implicit TLS from the first byte with
--implicit), AUTH PLAIN/LOGIN against --user and the password in $SMTP_TEST_PASSWORD (not an argument:
the tests check that no process's arguments hold it). Each accepted message is parsed
with Python's email package and written to --out as <n>.json: the envelope, every header
(name, value) as received, and the decoded text/plain and text/html parts. Prints
"READY <port>" when listening; runs until stdin closes (the test ends it with its pipe).
"""

import argparse
import email
import email.policy
import json
import os
import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Recorder:
    def __init__(self, out):
        self.out = out
        self.n = 0

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        parts = {}
        for part in msg.walk():
            ctype = part.get_content_type()
            if ctype in ("text/plain", "text/html") and not part.is_multipart():
                parts[ctype] = part.get_content()
        doc = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "headers": [[k, str(v)] for k, v in msg.items()],
            "subject": str(msg["subject"]),
            "content_type": msg.get_content_type(),
            "text": parts.get("text/plain"),
            "html": parts.get("text/html"),
            "auth": session.authenticated,
            "tls": session.ssl is not None
            or server.transport.get_extra_info("ssl_object") is not None,
        }
        self.n += 1
        tmp = os.path.join(self.out, "%d.tmp" % self.n)
        with open(tmp, "w") as f:
            json.dump(doc, f)
        os.rename(tmp, os.path.join(self.out, "%d.json" % self.n))
        return "250 Message accepted"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--implicit", action="store_true")
    a = p.parse_args()
    password = os.environ["SMTP_TEST_PASSWORD"]

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(a.cert, a.key)

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == a.user
            and auth_data.password.decode() == password
        )
        return AuthResult(success=ok, handled=False)

    kwargs = dict(
        hostname="127.0.0.1",
        port=a.port,
        authenticator=authenticate,
        auth_required=True,
        auth_exclude_mechanism=["CRAM-MD5"],
    )
    if a.implicit:
        controller = Controller(
            Recorder(a.out), ssl_context=ctx, auth_require_tls=False, **kwargs
        )
    else:
        controller = Controller(
            Recorder(a.out), tls_context=ctx, require_starttls=True, **kwargs
        )
    controller.start()
    print("READY %d" % a.port, flush=True)
    try:
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
