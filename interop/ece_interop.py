"""RFC 8291 / RFC 8188 interop: messages encrypted by this project must decrypt with
Python http_ece (over pyca/cryptography), and theirs must decrypt here.

Usage: python ece_interop.py PATH_TO_mailpush-interop [MESSAGES_PER_DIRECTION]
"""

import os
import random
import sys

import http_ece
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from helper import Helper, Tally, b64d, b64e

LIMIT = 3993  # plaintext limit for rs 4096 without padding


def ua_keys():
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    raw = private.private_numbers().private_value.to_bytes(32, "big")
    return private, public, raw, os.urandom(16)


def sizes(n, rng):
    fixed = [0, 1, LIMIT - 1, LIMIT]
    return fixed + [rng.randrange(0, LIMIT + 1) for _ in range(max(0, n - len(fixed)))]


def main():
    helper = Helper(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    rng = random.Random(8291)
    tally = Tally("ece-interop")
    providers = helper.call(op="providers")["providers"]

    for provider in providers:
        # Ours -> theirs: the key made in the call, made ahead, or agreed ahead, in turn.
        for i, size in enumerate(sizes(n, rng)):
            ahead = [None, "key", "agreement"][i % 3]
            def ours_to_theirs(size=size, provider=provider, ahead=ahead):
                private, public, _, auth = ua_keys()
                plaintext = os.urandom(size)
                request = dict(op="wp-encrypt", provider=provider, p256dh=b64e(public),
                               auth=b64e(auth), plaintext=b64e(plaintext))
                if ahead:
                    request["ahead"] = ahead
                body = b64d(helper.call(**request)["body"])
                assert len(body) == 86 + size + 17, len(body)
                got = http_ece.decrypt(body, private_key=private, auth_secret=auth, version="aes128gcm")
                assert got == plaintext, "plaintext differs"
            made = {None: "", "key": ", key made ahead", "agreement": ", key agreed ahead"}[ahead]
            tally.check(f"{provider} encrypt {size}{made} -> http_ece decrypt", ours_to_theirs)

        # Theirs -> ours.
        for size in sizes(n, rng):
            def theirs_to_ours(size=size, provider=provider):
                _, public, raw, auth = ua_keys()
                sender = ec.generate_private_key(ec.SECP256R1())
                plaintext = os.urandom(size)
                body = http_ece.encrypt(plaintext, private_key=sender, dh=public, auth_secret=auth,
                                        version="aes128gcm", rs=4096)
                if size == 0:
                    # http_ece writes no record at all for empty content; RFC 8188 needs a
                    # final record, so a strict decoder must call this body truncated.
                    assert len(body) == 86, len(body)
                    try:
                        helper.call(op="wp-decrypt", provider=provider, private=b64e(raw),
                                    auth=b64e(auth), body=b64e(body))
                    except RuntimeError as exc:
                        assert "no encrypted record" in str(exc), exc
                        return
                    raise AssertionError("record-less body accepted")
                got = b64d(helper.call(op="wp-decrypt", provider=provider, private=b64e(raw),
                                       auth=b64e(auth), body=b64e(body))["plaintext"])
                assert got == plaintext, "plaintext differs"
            tally.check(f"http_ece encrypt {size} -> {provider} decrypt", theirs_to_ours)

        # Padded to a fixed length: http_ece strips the zeros.
        def padded(provider=provider):
            private, public, _, auth = ua_keys()
            body = b64d(helper.call(op="wp-encrypt", provider=provider, p256dh=b64e(public),
                                    auth=b64e(auth), plaintext=b64e(b"short"), pad_to=1000)["body"])
            assert len(body) == 86 + 1000 + 17
            assert http_ece.decrypt(body, private_key=private, auth_secret=auth) == b"short"
        tally.check(f"{provider} padded message -> http_ece", padded)

        # Generic RFC 8188 with many records, both ways.
        for _ in range(max(1, n // 10)):
            rs = rng.randrange(18, 200)
            size = rng.randrange(0, 2000)
            def generic(rs=rs, size=size, provider=provider):
                ikm, salt, plaintext = os.urandom(16), os.urandom(16), os.urandom(size)
                ours = b64d(helper.call(op="ece-encrypt", provider=provider, ikm=b64e(ikm), salt=b64e(salt),
                                        keyid=b64e(b"a1"), rs=rs, plaintext=b64e(plaintext),
                                        padding=0)["body"])
                theirs = http_ece.encrypt(plaintext, salt=salt, key=ikm, keyid="a1", rs=rs)
                # Without padding the coding is deterministic: identical bytes.
                assert ours == theirs, "bodies differ"
                assert http_ece.decrypt(ours, key=ikm) == plaintext
                back = helper.call(op="ece-decrypt", provider=provider, ikm=b64e(ikm), body=b64e(theirs))
                assert b64d(back["plaintext"]) == plaintext and back["rs"] == rs
            tally.check(f"{provider} generic rs={rs} size={size}", generic)

        # Tampering is refused by both.
        def tampered(provider=provider):
            private, public, raw, auth = ua_keys()
            body = bytearray(http_ece.encrypt(b"x" * 50, private_key=ec.generate_private_key(ec.SECP256R1()),
                                              dh=public, auth_secret=auth))
            body[-1] ^= 1
            try:
                helper.call(op="wp-decrypt", provider=provider, private=b64e(raw), auth=b64e(auth),
                            body=b64e(bytes(body)))
            except RuntimeError as exc:
                assert "authentication" in str(exc), exc
            else:
                raise AssertionError("tampered body accepted")
        tally.check(f"{provider} refuses a tampered body", tampered)

    helper.close()
    sys.exit(tally.finish())


if __name__ == "__main__":
    main()
