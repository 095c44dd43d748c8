"""The whole relay on one machine: emulators, both functions, the Graph stand-in; the processor
fed by push or, with ``delivery="scheduled_pull"``, by a local stand-in for Cloud Scheduler.

Used by ``make dev``, ``make demo`` and the integration tests. Everything listens on
127.0.0.1, on free ports unless told otherwise, and everything started is stopped again.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

FUNCTIONS_DIR = Path(__file__).resolve().parents[2] / "functions"
PROJECT = "capi-relay-local"
TOPIC = "capi-events"
DEAD_LETTER_TOPIC = "capi-events-dead-letter"
DEAD_LETTER_SUBSCRIPTION = "capi-events-dead-letter-sub"
PUSH_SUBSCRIPTION = "capi-events-processor-push"
#: delivery = "scheduled_pull": the subscription the puller reads
PULL_SUBSCRIPTION = "capi-events-processor-pull"
DELIVERIES = ("push", "scheduled_pull")
#: the same policy infra/pubsub.tf gives the production push subscription
MAX_DELIVERY_ATTEMPTS = 10  # the processor itself gives up after 8 (config default)
MIN_BACKOFF_SECONDS = 10
MAX_BACKOFF_SECONDS = 600


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:  # it answers; a 4xx is its answer to a bare GET
                return
            time.sleep(0.2)
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log_path: Path | None = None

    def stop(self) -> None:
        if self.popen.poll() is None:
            try:  # emulators run java children: stop the whole process group
                os.killpg(self.popen.pid, signal.SIGTERM)
            except ProcessLookupError:
                return
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=5)

    def kill(self) -> None:
        """Stops it abruptly, as a crashed instance would."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=5)


def start(name: str, argv: list[str], env: dict[str, str], log_dir: Path | None,
          echo: TextIO | None = None) -> Process:
    """Starts ``argv`` under the guard, in its own process group, so that it and everything it
    starts stop with this process, even when this process is killed (see guard.py).

    ``echo``: copy its output there, each line prefixed with ``name`` (``make dev``)."""
    log_path = log_dir / f"{name}.log" if log_dir else None
    out = subprocess.PIPE if echo else open(log_path, "ab") if log_path else subprocess.DEVNULL
    popen = subprocess.Popen([sys.executable, "-m", "capi_relay_dev.guard", *argv], env=env,
                             stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.PIPE,
                             start_new_session=True)
    if echo:
        threading.Thread(target=_copy_lines, args=(popen.stdout, name, echo),
                         daemon=True).start()
    return Process(name, popen, log_path)


def _copy_lines(stream, name: str, echo: TextIO) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace").rstrip("\n")
        echo.write(f"{name:<7}| {line}\n")
        echo.flush()


def start_emulator(kind: str, port: int, log_dir: Path | None) -> Process:
    if kind == "pubsub":
        argv = ["gcloud", "beta", "emulators", "pubsub", "start", f"--host-port=127.0.0.1:{port}",
                f"--project={PROJECT}", "--quiet"]
    else:
        argv = ["gcloud", "emulators", "firestore", "start", f"--host-port=127.0.0.1:{port}",
                "--quiet"]
    proc = start(f"{kind}-emulator", argv, dict(os.environ), log_dir)
    try:
        wait_http(f"http://127.0.0.1:{port}/", 90, proc.popen)
    except Exception:
        proc.stop()
        raise
    return proc


@dataclass
class LocalStack:
    """Starts and stops the stack; attributes tell where each part listens."""

    ingest_port: int = 0
    pixel_id: str = "1234567890"
    access_token: str = "local-test-token"
    graph_url: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    log_dir: Path | None = None
    standin_options: dict[str, Any] = field(default_factory=dict)
    #: more pixels (PIXELS entries), each with a "token": the relay reads it from an environment
    #: variable (``token_env``) and the stand-in accepts it for that pixel alone
    extra_pixels: list[dict[str, Any]] = field(default_factory=list)
    #: where the functions' log lines are copied, prefixed with the function's name
    echo: TextIO | None = None
    #: "push" (Pub/Sub pushes each message to the processor) or "scheduled_pull" (the
    #: processor's `pull` entry point, POSTed every ``pull_period`` seconds as Cloud Scheduler
    #: does once a minute in production)
    delivery: str = "push"
    pull_period: float = 5.0
    processes: list[Process] = field(default_factory=list)
    standin: Any = None

    def __enter__(self) -> "LocalStack":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def ingest_url(self) -> str:
        return f"http://127.0.0.1:{self.ingest_port}"

    def start(self) -> None:
        if self.log_dir:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        self.pubsub_port, self.firestore_port = free_port(), free_port()
        self.processes.append(start_emulator("pubsub", self.pubsub_port, self.log_dir))
        self.processes.append(start_emulator("firestore", self.firestore_port, self.log_dir))
        if self.graph_url is None:
            from capi_relay_dev.graph_standin import GraphStandin

            self._standin_log = open(self.log_dir / "graph-standin.log", "a") \
                if self.log_dir else open(os.devnull, "w")
            self.standin = GraphStandin(
                "127.0.0.1", 0, expected_token=self.access_token, log=self._standin_log,
                pixel_tokens={str(p["id"]): p["token"] for p in self.extra_pixels})
            if self.standin_options:
                self.standin.set_faults(**self.standin_options)
            self.standin.start()
            self.graph_url = self.standin.url
        self.ingest_port = self.ingest_port or free_port()
        self.process_port = free_port()
        env = self.function_env()
        # Order matters: Pub/Sub drops what is published to a topic with no subscription, so
        # the processor, then topics and subscriptions, and only then the ingest that publishes.
        if self.delivery not in DELIVERIES:
            raise ValueError(f"delivery must be one of {', '.join(DELIVERIES)}")
        self.processor = self._start_processor(env)
        self.create_topology()
        self.ingest = self._function("ingest", "http", self.ingest_port, env)
        if self.delivery == "scheduled_pull":
            self._scheduler_stop = threading.Event()
            self._scheduler = threading.Thread(target=self._schedule, daemon=True)
            self._scheduler.start()

    def _start_processor(self, env: dict[str, str]) -> Process:
        if self.delivery == "scheduled_pull":
            return self._function("pull", "http", self.process_port,
                                  {**env, "PULL_SUBSCRIPTION": PULL_SUBSCRIPTION})
        return self._function("process", "cloudevent", self.process_port, env)

    def run_puller(self) -> int:
        """One puller run, as Cloud Scheduler starts it: the HTTP status it answered."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.process_port}/", data=b"",
                                         method="POST")
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    def _schedule(self) -> None:
        while not self._scheduler_stop.wait(self.pull_period):
            try:
                self.run_puller()
            except OSError:  # the processor is restarting: the next tick takes what waits
                pass

    def function_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{self.pubsub_port}",
            "FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{self.firestore_port}",
            "GOOGLE_CLOUD_PROJECT": PROJECT,
            "PUBSUB_TOPIC": TOPIC,
            "DEAD_LETTER_TOPIC": DEAD_LETTER_TOPIC,
            "META_PIXEL_ID": self.pixel_id,
            "META_GRAPH_URL": self.graph_url,
            "META_ACCESS_TOKEN": self.access_token,
            "PYTHONUNBUFFERED": "1",
        })
        if self.extra_pixels:
            pixels = []
            for pixel in self.extra_pixels:
                entry = {k: v for k, v in pixel.items() if k != "token"}
                entry["token_env"] = f"CAPI_RELAY_PIXEL_TOKEN_{pixel['id']}"
                env[entry["token_env"]] = pixel["token"]
                pixels.append(entry)
            env["PIXELS"] = json.dumps(pixels)
        env.update(self.extra_env)
        return env

    def _function(self, target: str, signature: str, port: int, env: dict[str, str]) -> Process:
        argv = [sys.executable, "-m", "functions_framework", f"--target={target}",
                f"--source={FUNCTIONS_DIR / 'main.py'}", f"--signature-type={signature}",
                "--host=127.0.0.1", f"--port={port}"]
        proc = start(target, argv, env, self.log_dir, self.echo)
        self.processes.append(proc)
        wait_http(f"http://127.0.0.1:{port}/", 60, proc.popen)
        return proc

    def restart_processor(self) -> None:
        """Starts a fresh processor on the same port (after kill(), as Cloud Run would)."""
        self.processes.remove(self.processor)
        self.processor = self._start_processor(self.function_env())

    def create_topology(self) -> None:
        """Topics and subscriptions with the same policies as infra/pubsub.tf."""
        from google.cloud import pubsub_v1
        from google.protobuf import duration_pb2

        os.environ["PUBSUB_EMULATOR_HOST"] = f"127.0.0.1:{self.pubsub_port}"
        publisher = pubsub_v1.PublisherClient()
        subscriber = pubsub_v1.SubscriberClient()
        topic = publisher.topic_path(PROJECT, TOPIC)
        dead = publisher.topic_path(PROJECT, DEAD_LETTER_TOPIC)
        publisher.create_topic(name=topic)
        publisher.create_topic(name=dead)
        subscriber.create_subscription(
            name=subscriber.subscription_path(PROJECT, DEAD_LETTER_SUBSCRIPTION), topic=dead,
            ack_deadline_seconds=60)
        pulled = self.delivery == "scheduled_pull"
        subscriber.create_subscription(request={
            "name": subscriber.subscription_path(
                PROJECT, PULL_SUBSCRIPTION if pulled else PUSH_SUBSCRIPTION),
            "topic": topic,
            **({} if pulled else {
                "push_config": {"push_endpoint": f"http://127.0.0.1:{self.process_port}/"}}),
            "ack_deadline_seconds": 60,
            "retry_policy": {
                "minimum_backoff": duration_pb2.Duration(seconds=MIN_BACKOFF_SECONDS),
                "maximum_backoff": duration_pb2.Duration(seconds=MAX_BACKOFF_SECONDS),
            },
            "dead_letter_policy": {"dead_letter_topic": dead,
                                   "max_delivery_attempts": MAX_DELIVERY_ATTEMPTS},
        })
        self.publisher_client, self.subscriber_client = publisher, subscriber

    def stop(self) -> None:
        if getattr(self, "_scheduler_stop", None) is not None:
            self._scheduler_stop.set()
            self._scheduler.join(timeout=130)
        for proc in reversed(self.processes):
            try:
                proc.stop()
            except Exception:  # keep stopping the rest
                pass
        self.processes.clear()
        if self.standin is not None:
            self.standin.stop()
            self.standin = None
            self._standin_log.close()
