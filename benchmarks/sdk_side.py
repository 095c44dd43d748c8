"""Meta's SDK side of the benchmark, in a module of its own: the whole-process race imports
it without importing anything of ours."""

from __future__ import annotations

from typing import Any


def sdk_event(spec: dict[str, Any]) -> dict[str, Any]:
    """Meta's SDK for the same event: build the serverside objects, then ``normalize()``."""
    from facebook_business.adobjects.serverside.content import Content
    from facebook_business.adobjects.serverside.custom_data import CustomData
    from facebook_business.adobjects.serverside.event import Event
    from facebook_business.adobjects.serverside.user_data import UserData

    custom = None
    if spec["custom"]:
        kwargs = dict(spec["custom"])
        if "contents" in kwargs:
            kwargs["contents"] = [Content(**c) for c in kwargs["contents"]]
        custom = CustomData(**kwargs)
    event = Event(
        event_name=spec["event_name"], event_time=spec["event_time"],
        event_id=spec["event_id"], event_source_url=spec.get("event_source_url"),
        referrer_url=spec.get("referrer_url"), action_source=spec["action_source"],
        user_data=UserData(**spec["user"]), custom_data=custom,
    )
    return event.normalize()
