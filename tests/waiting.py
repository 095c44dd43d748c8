"""Polling for something asynchronous (a push delivery, a browser beacon) to happen."""

import time


def wait_for(condition, timeout: float = 60.0, what: str = "condition",
             interval: float = 0.2):
    """The first truthy value of ``condition()``; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
