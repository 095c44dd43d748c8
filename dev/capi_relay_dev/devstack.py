"""`make dev`: the local stack in the foreground until Ctrl-C or SIGTERM.

The functions' structured log lines are printed here, each prefixed with the function's name.
Everything started stops with this process: on Ctrl-C and SIGTERM through the stack's stop(),
on a crash through the `with` block, and on SIGKILL through each child's guard (guard.py).
"""

from __future__ import annotations

import os
import signal
import sys
import threading

from capi_relay import config
from capi_relay_dev.localstack import DELIVERIES, LocalStack


def main() -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    port = os.environ.get("INGEST_PORT") or config.default("INGEST_PORT")
    options = {"ingest_port": int(port), "echo": sys.stdout}
    for env, key in (("META_GRAPH_URL", "graph_url"), ("META_PIXEL_ID", "pixel_id"),
                     ("META_ACCESS_TOKEN", "access_token")):
        if os.environ.get(env):
            options[key] = os.environ[env]
    delivery = os.environ.get("DELIVERY") or config.default("DELIVERY")
    if delivery not in DELIVERIES:
        print(f"DELIVERY: must be one of {', '.join(DELIVERIES)}", file=sys.stderr)
        return 2
    options["delivery"] = delivery
    try:
        options["pull_period"] = float(os.environ.get("PULL_PERIOD_SECONDS")
                                       or config.default("PULL_PERIOD_SECONDS"))
    except ValueError:
        print("PULL_PERIOD_SECONDS: must be a number", file=sys.stderr)
        return 2
    with LocalStack(**options) as stack:
        print(f"capi-relay ingest: {stack.ingest_url}", flush=True)
        print(f"Graph API: {stack.graph_url}"
              + (" (local stand-in)" if stack.standin else ""), flush=True)
        if stack.delivery == "scheduled_pull":
            print(f"delivery: scheduled pull, a puller run every {stack.pull_period:g} s",
                  flush=True)
        print("Ctrl-C stops everything.", flush=True)
        stop.wait()
    print("stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
