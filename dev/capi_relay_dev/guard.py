"""Runs one command and takes its whole process group down when its parent goes away.

``python -m capi_relay_dev.guard CMD...`` is started by the local stack in a new session with a
pipe on stdin whose write end only the stack holds. When the stack exits for any reason, even
SIGKILL, the kernel closes that pipe; the guard reads EOF and stops every process of its group
(gcloud and the Java emulator it started, or functions-framework): SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

GRACE_SECONDS = 5.0


def _stop(child: subprocess.Popen) -> None:
    """SIGTERM, a grace period, then SIGKILL to the guard's group and the child's own group
    (gcloud starts the emulator in a process group of its own)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    groups = {os.getpgid(0)}
    try:
        groups.add(os.getpgid(child.pid))
    except ProcessLookupError:
        pass
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for group in sorted(groups - {os.getpgid(0)}) + [os.getpgid(0)]:
            try:
                os.killpg(group, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + GRACE_SECONDS
        while sig == signal.SIGTERM and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m capi_relay_dev.guard CMD [ARGS...]", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    child = subprocess.Popen(argv, stdin=subprocess.DEVNULL)

    def watch_parent() -> None:
        while sys.stdin.buffer.read(4096):
            pass
        stop.set()  # EOF: the stack is gone

    threading.Thread(target=watch_parent, daemon=True).start()
    while child.poll() is None:
        if stop.wait(0.2):
            _stop(child)  # ends with SIGKILL to the guard's own group, the guard included
    return child.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
