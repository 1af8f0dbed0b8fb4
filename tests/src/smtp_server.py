"""A real SMTP server for berth's tests: aiosmtpd (PyPI), configured here.

Writes each mail it accepts to OUT_DIR as NNNN.eml (renamed into place
once complete), after three header lines of its own: X-Rcpt-To (the
envelope's recipients), X-Tls (whether the session was encrypted) and
X-Auth (the login that sent it, or "-"). Prints READY when listening.

usage: smtp_server.py PORT OUT_DIR [--auth USER:PASS] [--starttls CERT KEY]
                      [--tls CERT KEY]
"""

import argparse
import os
import ssl
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Handler:
    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.count += 1
            n = self.count
        tls = bool(session.ssl) or server.transport.get_extra_info("sslcontext") is not None
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else "-"
        head = "X-Rcpt-To: %s\r\nX-Tls: %s\r\nX-Auth: %s\r\n" % (",".join(envelope.rcpt_tos), tls, login)
        tmp = os.path.join(self.out_dir, ".%04d.tmp" % n)
        with open(tmp, "wb") as f:
            f.write(head.encode())
            f.write(envelope.original_content or envelope.content)
        os.rename(tmp, os.path.join(self.out_dir, "%04d.eml" % n))
        return "250 OK"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int)
    p.add_argument("out_dir")
    p.add_argument("--auth")
    p.add_argument("--starttls", nargs=2)
    p.add_argument("--tls", nargs=2)
    a = p.parse_args()

    kwargs = {}
    if a.auth:
        user, password = a.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (
                isinstance(auth_data, LoginPassword)
                and auth_data.login.decode() == user
                and auth_data.password.decode() == password
            )
            return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

        kwargs.update(authenticator=authenticator, auth_required=True, auth_require_tls=False)
    if a.starttls:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(*a.starttls)
        kwargs.update(tls_context=ctx, require_starttls=True)
    if a.tls:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(*a.tls)
        kwargs.update(ssl_context=ctx)

    controller = Controller(Handler(a.out_dir), hostname="127.0.0.1", port=a.port, **kwargs)
    controller.start()
    print("READY", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
