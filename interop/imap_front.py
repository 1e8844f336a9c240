"""Python's imaplib through mailpushd's IMAP front: implicit TLS and STARTTLS, APPEND
with a synchronizing literal (8-bit, with CRLFs and braces in it), FETCH of what was
appended, and IDLE woken by an APPEND on a second session.

Usage: imap_front.py HOST TLS_PORT STARTTLS_PORT CA_FILE SERVER_NAME USER PASSWORD
Exits 0 when every check held; says which did not otherwise.
"""

import imaplib
import socket
import ssl
import sys


def context(ca_file):
    ctx = ssl.create_default_context(cafile=ca_file)
    return ctx


class FrontTLS(imaplib.IMAP4_SSL):
    """IMAP4_SSL that connects to an address but asks for a server name by SNI."""

    def __init__(self, host, port, ssl_context, server_name):
        self._server_name = server_name
        super().__init__(host, port, ssl_context=ssl_context)

    def _create_socket(self, timeout):
        sock = socket.create_connection((self.host, self.port), timeout)
        return self.ssl_context.wrap_socket(sock, server_hostname=self._server_name)


def check(condition, what):
    if not condition:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def idle_until_exists(imap, other):
    """IDLE on imap until other's APPEND shows as EXISTS (imaplib has no idle() here)."""
    tag = imap._new_tag()
    imap.send(tag + b" IDLE\r\n")
    line = imap.readline()
    check(line.startswith(b"+"), f"IDLE continuation: {line!r}")
    other.append("INBOX", None, None, b"Subject: wake\r\n\r\nup\r\n")
    line = imap.readline()
    check(b"EXISTS" in line, f"EXISTS during IDLE: {line!r}")
    imap.send(b"DONE\r\n")
    while True:
        line = imap.readline()
        if line.startswith(tag):
            check(b" OK " in line, f"IDLE completed: {line!r}")
            return


def main():
    host, tls_port, starttls_port, ca_file, server_name, user, password = sys.argv[1:8]
    ctx = context(ca_file)

    implicit = FrontTLS(host, int(tls_port), ctx, server_name)
    typ, _ = implicit.login(user, password)
    check(typ == "OK", "LOGIN over implicit TLS")
    typ, data = implicit.capability()
    caps = data[0].decode().split()
    check(caps[-1] == "XAPPLEPUSHSERVICE", f"XAPPLEPUSHSERVICE last after login: {caps}")
    check("STARTTLS" not in caps, f"no STARTTLS after TLS: {caps}")

    plain = imaplib.IMAP4(host, int(starttls_port))
    check("LOGINDISABLED" in plain.capabilities, "LOGINDISABLED before STARTTLS")
    plain.host = server_name  # the name STARTTLS asks for by SNI and checks
    typ, _ = plain.starttls(ctx)
    check(typ == "OK", "STARTTLS")
    typ, _ = plain.login(user, password)
    check(typ == "OK", "LOGIN after STARTTLS")

    # An 8-bit message with what could be mistaken for framing inside it.
    body = ("Grüße aus Köln {5}\r\n* OK not a response\r\n".encode() * 200) + b"\xff\xfe\r\n"
    message = b"Subject: literal\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + body
    typ, data = implicit.append("INBOX", None, None, message)
    check(typ == "OK", f"APPEND: {data}")
    typ, _ = implicit.select("INBOX")
    check(typ == "OK", "SELECT")
    typ, data = implicit.search(None, "SUBJECT", "literal")
    uid = data[0].split()[-1]
    typ, data = implicit.fetch(uid, "(BODY.PEEK[])")
    check(typ == "OK" and data[0][1] == message, "FETCH gives back what APPEND sent")

    typ, _ = plain.select("INBOX")
    check(typ == "OK", "SELECT after STARTTLS")
    idle_until_exists(plain, implicit)

    for imap in (implicit, plain):
        imap.logout()
    print("imaplib through the front: all checks held")


if __name__ == "__main__":
    main()
