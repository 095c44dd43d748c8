"""`capi-relay replay`: republish chosen dead-lettered events to the events topic.

Pulls from the dead-letter subscription; a message is chosen by its ``reason`` attribute and
its age; chosen ones are republished with ``replay=1`` (the processor may then claim an event
it had recorded as failed) and acknowledged; the rest are handed back untouched. ``--dry-run``
hands everything back and only reports.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Mapping

from capi_relay import config
from capi_relay.core.delivery import DeadReason


@dataclass(frozen=True)
class ReplayFilter:
    reasons: tuple[str, ...] = ()
    max_age_seconds: float | None = None
    min_age_seconds: float | None = None

    def chooses(self, attributes: Mapping[str, str], now: float) -> bool:
        """Pure: whether a dead-lettered message matches the operator's filter."""
        if self.reasons and attributes.get("reason") not in self.reasons:
            return False
        try:
            age = now - float(attributes.get("dead_lettered_at", "nan"))
        except ValueError:
            age = float("nan")
        if self.max_age_seconds is not None and not age <= self.max_age_seconds:
            return False
        if self.min_age_seconds is not None and not age >= self.min_age_seconds:
            return False
        return True


def replay(subscriber, publisher, *, subscription: str, topic: str, chosen: ReplayFilter,
           now: float, dry_run: bool, limit: int, out=sys.stdout) -> dict[str, Any]:
    """Pulls until the subscription is drained or ``limit`` messages were seen."""
    summary = {"seen": 0, "replayed": 0, "kept": 0, "dry_run": dry_run}
    handed_back: list[str] = []
    while summary["seen"] < limit:
        response = subscriber.pull(request={"subscription": subscription,
                                            "max_messages": min(100, limit - summary["seen"])},
                                   timeout=10)
        if not response.received_messages:
            break
        ack_ids = []
        for received in response.received_messages:
            message = received.message
            attributes = dict(message.attributes)
            summary["seen"] += 1
            take = chosen.chooses(attributes, now)
            line = {"event_name": attributes.get("event_name"),
                    "event_id": attributes.get("event_id"), "reason": attributes.get("reason"),
                    "action": ("would replay" if dry_run else "replayed") if take else "kept"}
            if attributes.get("pixel_id"):  # a copy dead for one pixel: replayed to it alone
                line["pixel_id"] = attributes["pixel_id"]
            out.write(json.dumps(line) + "\n")
            if take and not dry_run:
                publisher.publish(topic, message.data, **{
                    "replay": "1", "source": "replay",
                    "replayed_reason": attributes.get("reason", "")}).result(timeout=30)
                ack_ids.append(received.ack_id)
                summary["replayed"] += 1
            else:
                handed_back.append(received.ack_id)
                summary["kept"] += 1
        if ack_ids:
            subscriber.acknowledge(request={"subscription": subscription, "ack_ids": ack_ids})
    if handed_back:  # make them deliverable again now, not after the ack deadline
        for start in range(0, len(handed_back), 1000):
            subscriber.modify_ack_deadline(request={
                "subscription": subscription, "ack_ids": handed_back[start:start + 1000],
                "ack_deadline_seconds": 0})
    return summary


def cmd_replay(args: argparse.Namespace) -> int:
    from google.cloud import pubsub_v1

    project = args.project or os.environ.get("GOOGLE_CLOUD_PROJECT")
    if not project:
        print("capi-relay replay: --project or GOOGLE_CLOUD_PROJECT is required", file=sys.stderr)
        return 2
    subscriber = pubsub_v1.SubscriberClient()
    publisher = pubsub_v1.PublisherClient()
    subscription = subscriber.subscription_path(project, args.subscription)
    topic = publisher.topic_path(project, args.topic)
    chosen = ReplayFilter(tuple(args.reason or ()),
                          args.max_age_hours * 3600 if args.max_age_hours else None,
                          args.min_age_hours * 3600 if args.min_age_hours else None)
    summary = replay(subscriber, publisher, subscription=subscription, topic=topic,
                     chosen=chosen, now=time.time(), dry_run=args.dry_run, limit=args.limit)
    print(json.dumps({"summary": summary}))
    return 0


def register(sub) -> None:
    parser = sub.add_parser("replay", help="republish dead-lettered events")
    parser.add_argument("--project", help="Google Cloud project (default: GOOGLE_CLOUD_PROJECT)")
    parser.add_argument("--subscription", default=os.environ.get(
        "DEAD_LETTER_SUBSCRIPTION", config.default("DEAD_LETTER_SUBSCRIPTION")),
        help="dead-letter subscription (default: DEAD_LETTER_SUBSCRIPTION or %(default)s)")
    parser.add_argument("--topic", default=os.environ.get("PUBSUB_TOPIC", "capi-events"),
                        help="events topic to republish to (default: PUBSUB_TOPIC)")
    parser.add_argument("--reason", action="append",
                        choices=[r.value for r in DeadReason], metavar="REASON",
                        help="only this reason (repeatable): "
                             + ", ".join(r.value for r in DeadReason))
    parser.add_argument("--max-age-hours", type=float, help="only events dead-lettered since")
    parser.add_argument("--min-age-hours", type=float, help="only events dead-lettered before")
    parser.add_argument("--limit", type=int, default=10_000, help="stop after this many")
    parser.add_argument("--dry-run", action="store_true", help="report only, change nothing")
    parser.set_defaults(run=cmd_replay)
