"""Drives the mailpush-interop helper binary over JSON lines."""

import base64
import json
import subprocess


def b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Helper:
    """One long-lived helper process; each call is one request line and one answer."""

    def __init__(self, binary: str):
        self.proc = subprocess.Popen(
            [binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def call(self, **request):
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


class Tally:
    """Counts checks and prints the closing 'N passed, N failed' line."""

    def __init__(self, suite: str):
        self.suite = suite
        self.passed = 0
        self.failed = 0

    def check(self, name: str, fn):
        try:
            fn()
            self.passed += 1
        except Exception as exc:  # a failed check is reported, never fatal to the run
            self.failed += 1
            print(f"FAIL {self.suite}: {name}: {exc!r}")

    def finish(self) -> int:
        print(f"{self.suite}: {self.passed} passed, {self.failed} failed")
        return 1 if self.failed or not self.passed else 0
