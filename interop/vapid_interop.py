"""VAPID and push-request interop: this project against OpenSSL, Node's web-push,
py_vapid, PyJWT, http_ece and pywebpush.

usage: vapid_interop.py HELPER_BINARY [ROUNDS]

* Keys written by `openssl ecparam -genkey` (SEC1, PEM and DER), `openssl pkcs8`
  (PKCS#8, PEM and DER), Node `web-push generate-vapid-keys` (raw) and py_vapid (PEM)
  import here and give the public key the other tool gives.
* Tokens signed here verify with PyJWT and py_vapid; tokens signed by py_vapid and by
  Node's web-push verify here; a token with one character changed does not.
* A whole request built here decrypts with http_ece, and carries the headers pywebpush
  sends for the same message.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time

import http_ece
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02
from pywebpush import webpush

from helper import Helper, Tally, b64d, b64e

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_WEB_PUSH = os.path.join(HERE, "node_modules", ".bin", "web-push")
ENDPOINT = "https://updates.push.example.net/wpush/v2/gAAAAABlx"
AUDIENCE = "https://updates.push.example.net"
SUB = "mailto:postmaster@mail.example"


def run(*args, stdin=None) -> bytes:
    return subprocess.run(args, input=stdin, check=True, capture_output=True).stdout


def raw_public(public_key) -> str:
    return b64e(
        public_key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    )


def openssl_public(pem: bytes) -> str:
    der = run("openssl", "ec", "-pubout", "-outform", "DER", stdin=pem)
    return b64e(der[-65:])  # SubjectPublicKeyInfo ends with the 65-octet point


def check_key_formats(helper: Helper, provider: str, tally: Tally, rounds: int):
    def ours(key_file: bytes) -> str:
        return helper.call(op="vapid-public", provider=provider, key=b64e(key_file))["public"]

    for i in range(rounds):
        sec1_pem = run("openssl", "ecparam", "-name", "prime256v1", "-genkey")
        expected = openssl_public(sec1_pem)
        sec1_der = run("openssl", "ec", "-outform", "DER", stdin=sec1_pem)
        pkcs8_pem = run("openssl", "pkcs8", "-topk8", "-nocrypt", stdin=sec1_pem)
        pkcs8_der = run("openssl", "pkcs8", "-topk8", "-nocrypt", "-outform", "DER", stdin=sec1_pem)
        for name, data in [
            ("openssl ecparam SEC1 PEM (with EC PARAMETERS)", sec1_pem),
            ("openssl SEC1 DER", sec1_der),
            ("openssl pkcs8 PEM", pkcs8_pem),
            ("openssl pkcs8 DER", pkcs8_der),
        ]:
            tally.check(f"{provider} {name} #{i}", lambda d=data: _eq(ours(d), expected))

        node = json.loads(run(NODE_WEB_PUSH, "generate-vapid-keys", "--json"))
        tally.check(
            f"{provider} node web-push raw key #{i}",
            lambda: _eq(ours(node["privateKey"].encode()), node["publicKey"]),
        )
        padded = node["privateKey"] + "=" * (-len(node["privateKey"]) % 4)
        tally.check(
            f"{provider} node web-push raw key, padded #{i}",
            lambda: _eq(ours(padded.encode()), node["publicKey"]),
        )

        vapid = Vapid02()
        vapid.generate_keys()
        tally.check(
            f"{provider} py_vapid PEM #{i}",
            lambda: _eq(ours(vapid.private_pem()), raw_public(vapid.public_key)),
        )


def _eq(got, expected):
    if got != expected:
        raise AssertionError(f"{got!r} != {expected!r}")


def check_tokens(helper: Helper, provider: str, tally: Tally, rounds: int):
    for i in range(rounds):
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        now = int(time.time())
        header = helper.call(
            op="vapid-sign", provider=provider, key=b64e(pem), endpoint=ENDPOINT, sub=SUB, now=now
        )["authorization"]
        match = re.fullmatch(r"vapid t=([^,]+), k=(\S+)", header)

        def pyjwt_verifies():
            token, k = match.group(1), match.group(2)
            _eq(k, raw_public(key.public_key()))
            claims = jwt.decode(token, key.public_key(), algorithms=["ES256"], audience=AUDIENCE)
            _eq(claims["sub"], SUB)
            _eq(claims["exp"], now + 12 * 3600)
            _eq(jwt.get_unverified_header(token), {"typ": "JWT", "alg": "ES256"})

        def py_vapid_verifies():
            token, k = match.group(1), match.group(2)
            signed, signature = token.rsplit(".", 1)
            # py_vapid's own header parser splits on the last space, so it cannot read
            # RFC 8292's "t=…, k=…" layout; its verifier is called directly instead.
            if not Vapid02.from_raw_public(k.encode()).verify_token(signed.encode(), signature):
                raise AssertionError("py_vapid refused the token")

        tally.check(f"{provider} our token verifies with PyJWT #{i}", pyjwt_verifies)
        tally.check(f"{provider} our token verifies with py_vapid #{i}", py_vapid_verifies)

        # py_vapid's header, in its own "t=…,k=…" layout, verifies here.
        vapid = Vapid02.from_pem(pem)
        theirs = vapid.sign({"aud": AUDIENCE, "exp": now + 3600, "sub": SUB})["Authorization"]

        def theirs_verify_here():
            answer = helper.call(
                op="vapid-verify", provider=provider, authorization=theirs, audience=AUDIENCE, now=now
            )
            _eq(answer["key"], raw_public(key.public_key()))
            _eq(answer["sub"], SUB)

        def tampered_refused():
            t = theirs.index("t=") + 2 + 40
            changed = theirs[:t] + ("A" if theirs[t] != "A" else "B") + theirs[t + 1 :]
            try:
                helper.call(
                    op="vapid-verify", provider=provider, authorization=changed, audience=AUDIENCE, now=now
                )
            except RuntimeError:
                return
            raise AssertionError("a changed token verified")

        tally.check(f"{provider} py_vapid header verifies here #{i}", theirs_verify_here)
        tally.check(f"{provider} changed py_vapid header refused #{i}", tampered_refused)

    # Node's web-push signs with its own JWS code.
    node_keys = json.loads(run(NODE_WEB_PUSH, "generate-vapid-keys", "--json"))
    script = (
        "const wp = require('web-push');"
        "const [aud, sub, pub, priv] = process.argv.slice(1);"
        "process.stdout.write(wp.getVapidHeaders(aud, sub, pub, priv, 'aes128gcm').Authorization);"
    )
    for i in range(rounds):
        node_header = run(
            "node", "-e", script, AUDIENCE, SUB, node_keys["publicKey"], node_keys["privateKey"]
        ).decode()

        def node_verifies_here():
            answer = helper.call(
                op="vapid-verify",
                provider=provider,
                authorization=node_header,
                audience=AUDIENCE,
                now=int(time.time()),
            )
            _eq(answer["key"], node_keys["publicKey"])

        tally.check(f"{provider} node web-push header verifies here #{i}", node_verifies_here)


def pywebpush_headers(subscription, pem: bytes, ttl: int, urgency: str, topic: str) -> dict:
    """The headers pywebpush would send, read from its curl rendering."""
    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)  # pywebpush's curl mode writes the body to ./encrypted.data
        try:
            curl = webpush(
                subscription,
                "x" * 10,
                vapid_private_key=Vapid02.from_pem(pem),
                vapid_claims={"sub": SUB},
                curl=True,
                ttl=ttl,
                headers={"Urgency": urgency, "Topic": topic},
            )
        finally:
            os.chdir(cwd)
    return {k.lower(): v for k, v in re.findall(r'-H "([^:]+): ([^"]*)"', curl)}


def check_requests(helper: Helper, provider: str, tally: Tally, rounds: int):
    for i in range(rounds):
        ua = ec.generate_private_key(ec.SECP256R1())
        auth = os.urandom(16)
        subscription = {
            "endpoint": ENDPOINT,
            "expirationTime": None,
            "keys": {"p256dh": raw_public(ua.public_key()), "auth": b64e(auth)},
        }
        vapid = ec.generate_private_key(ec.SECP256R1())
        pem = vapid.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        plaintext = os.urandom(10)
        ttl, urgency, topic = 60 * (i + 1), ["very-low", "low", "normal", "high"][i % 4], f"inbox{i}"
        ours = helper.call(
            op="build-push",
            provider=provider,
            subscription=json.dumps(subscription),
            key=b64e(pem),
            sub=SUB,
            ttl=ttl,
            urgency=urgency,
            topic=topic,
            plaintext=b64e(plaintext),
            now=int(time.time()),
        )

        def body_decrypts_with_http_ece():
            got = http_ece.decrypt(
                b64d(ours["body"]), private_key=ua, auth_secret=auth, version="aes128gcm"
            )
            _eq(got, plaintext)

        def headers_match_pywebpush():
            theirs = pywebpush_headers(subscription, pem, ttl, urgency, topic)
            mine = ours["headers"]
            _eq(ours["method"], "POST")
            _eq(ours["uri"], ENDPOINT)
            # pywebpush adds no Content-Type; every header it sends, we send alike.
            _eq(set(theirs) - set(mine), set())
            for name in ["content-encoding", "ttl", "urgency", "topic", "content-length"]:
                _eq(mine[name], str(theirs[name]))
            for header in [mine["authorization"], theirs["authorization"]]:
                token = re.search(r"t=([^,]+)", header).group(1)
                claims = jwt.decode(
                    token, vapid.public_key(), algorithms=["ES256"], audience=AUDIENCE
                )
                _eq(claims["sub"], SUB)

        tally.check(f"{provider} request body decrypts with http_ece #{i}", body_decrypts_with_http_ece)
        tally.check(f"{provider} request headers match pywebpush #{i}", headers_match_pywebpush)


def main() -> int:
    binary = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    helper = Helper(binary)
    tally = Tally("vapid-interop")
    for provider in helper.call(op="providers")["providers"]:
        check_key_formats(helper, provider, tally, rounds)
        check_tokens(helper, provider, tally, rounds)
        check_requests(helper, provider, tally, rounds)
    helper.close()
    return tally.finish()


if __name__ == "__main__":
    sys.exit(main())
