"""``capi-relay preview``: every pipeline step, as the deployed relay runs them, with no I/O.

Ingest's mapping, then the processor's consent, enrichment (from ``--profiles FILE`` instead of
Firestore), regional rules, hash guard and Meta's rules, built from the same settings
(environment variables, or the flags that set them) by the same ``bootstrap.rules_from``. What
it prints under ``data`` is what Meta would receive; everything else says why not, by name.
"""

from __future__ import annotations

import copy
import json
import os
from typing import Any, Callable, Mapping, Sequence

from capi_relay.app.enrichment import Enricher
from capi_relay.core import pipeline
from capi_relay.core.mapping import NO_REQUEST, RequestContext
from capi_relay.core.routing import Pixel, pixels_for

#: preview needs none of the deployment's resource names; these stand in when they are unset
_PLACEHOLDERS = {"GOOGLE_CLOUD_PROJECT": "preview", "PUBSUB_TOPIC": "preview",
                 "META_PIXEL_ID": "preview"}


def settings_for(overrides: Mapping[str, str | None], env: Mapping[str, str] | None = None):
    """The relay's Settings from the environment, with flags (variable name -> value) on top.

    Parsing and validation are the relay's own (``config.Settings``): a bad value is refused
    here exactly as the deployed function would refuse it.
    """
    from capi_relay.config import Settings

    merged = {**_PLACEHOLDERS, **(os.environ if env is None else env)}
    merged.update({k: v for k, v in overrides.items() if v is not None})
    return Settings.from_env(merged)


class ProfilesFile:
    """A ProfileStore over documents read from a JSON file; writes stay in memory.

    The file holds the profiles collection as Firestore does: an object of document id ->
    document (``xid_<sha256>`` profiles, ``link_cid_``/``link_fbp_`` links, see
    ``core.profiles``), or a list of profile documents (each filed under its external_id).
    """

    def __init__(self, docs: Mapping[str, Mapping[str, Any]] | None = None):
        self.docs: dict[str, dict[str, Any]] = copy.deepcopy(dict(docs or {}))

    @classmethod
    def load(cls, path: str) -> "ProfilesFile":
        from capi_relay.core.profiles import profile_doc_id

        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        if isinstance(data, list):
            docs = {}
            for index, doc in enumerate(data):
                doc_id = profile_doc_id(doc.get("external_id")) if isinstance(doc, dict) \
                    else None
                if doc_id is None:
                    raise ValueError(f"profiles[{index}]: external_id must be a SHA-256 hash")
                docs[doc_id] = doc
            return cls(docs)
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            raise ValueError("profiles: must be an object of document id -> document, "
                             "or a list of profile documents")
        return cls(data)

    def fetch(self, doc_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {i: copy.deepcopy(self.docs[i]) for i in doc_ids if i in self.docs}

    def save(self, writes) -> int:
        for write in writes:
            data = copy.deepcopy(dict(write.data))
            current = self.docs.get(write.doc_id)
            if write.merge and current is not None:
                for key, value in data.items():  # Firestore merges maps field by field
                    if isinstance(value, dict) and isinstance(current.get(key), dict):
                        current[key] = {**current[key], **value}
                    else:
                        current[key] = value
            else:
                self.docs[write.doc_id] = data
        return len(writes)


def preview(events: Sequence[Any], *, now: float, rules: pipeline.Policy,
            new_id: Callable[[], str], enrich: pipeline.Enrich | None = None,
            request: RequestContext = NO_REQUEST, explain: bool = False,
            pixels: Sequence[Pixel] | None = None, source: str | None = None) -> dict[str, Any]:
    """Every step for every event: what Meta would receive, and why the rest would not go.

    - ``data``: the events as sent to Meta, in order.
    - ``rejected``: refused by ingest (the HTTP answer's ``rejected``): index, errors, the
      match keys found all the same (names), and the draft once the errors are fixed.
    - ``not_sent``: accepted, yet not sent: withheld by consent, a duplicate of an earlier
      event, or dead-lettered (``too_old``, ``insufficient_customer_information``).
    - ``dropped``: fields a step removed, by step (``map``, ``consent``, ``regional``,
      ``guard``), names only.
    - ``explain`` (with ``explain``): per event, where each field came from, what mapping
      dropped and why, personal-looking keys not used, and why it would be dead-lettered.
    - ``pixels`` (given ``pixels``, PIXELS' routes): per event in ``data``, the pixels it
      would go to, as if posted with the key named ``source``; an event no route takes is
      ``not_sent`` as ``no_pixel_route``.
    """
    data: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    not_sent: list[dict[str, Any]] = []
    dropped: list[dict[str, Any]] = []
    explained: list[dict[str, Any]] = []
    routed: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for index, raw in enumerate(events):
        # explain=True always: a refused event's report names the keys found and its draft
        mapped = pipeline.admit(raw, now=now, new_id=new_id, policy=rules, request=request,
                                explain=True)
        explanation = {"index": index, **{k: v for k, v in (mapped.explanation or {}).items()
                                          if k != "draft"}}
        if explain:
            explained.append(explanation)
        if mapped.dropped:
            dropped.append({"index": index, "step": "map", "fields": list(mapped.dropped)})
        if mapped.event is None:
            rejected.append(_refused(index, mapped))
            continue
        event_id = mapped.event.event_id
        targets = None
        if pixels is not None:  # the processor routes before it decides (core.routing)
            targets = pixels_for(pixels, event_name=mapped.event.event_name,
                                 url=mapped.event.event_source_url, source=source)
            if not targets:
                not_sent.append({"index": index, "event_id": event_id,
                                 "reason": "no_pixel_route"})
                continue
        decision = pipeline.decide(pipeline.queued(mapped), now, rules, enrich)
        for step, names in decision.removed.items():
            dropped.append({"index": index, "step": step, "fields": list(names)})
        if decision.event is None:
            not_sent.append({"index": index, "event_id": event_id, "reason": "consent",
                             "detail": decision.consent.reason})
            continue
        key = (decision.event.event_name, event_id)
        if key in seen:  # the ledger sends one event per (pixel, event_name, event_id)
            not_sent.append({"index": index, "event_id": event_id, "reason": "duplicate"})
            continue
        seen.add(key)
        if decision.dead is not None:
            entry = {"index": index, "event_id": event_id, "reason": decision.dead.reason.value}
            if decision.dead.detail:
                entry["detail"] = explanation["would_be_dead_lettered"] = decision.dead.detail
            not_sent.append(entry)
            continue
        data.append(decision.event.to_wire())
        if targets is not None:
            routed.append({"index": index, "event_id": event_id,
                           "pixels": [p.id for p in targets]})
    out: dict[str, Any] = {"data": data}
    if pixels is not None:
        out["pixels"] = routed
    for name, rows in (("rejected", rejected), ("not_sent", not_sent), ("dropped", dropped)):
        if rows:
            out[name] = rows
    if explain:
        out["explain"] = explained
    return out


def _refused(index: int, mapped: Any) -> dict[str, Any]:
    """A refused event: its errors, and what was found all the same (names only), so a thin
    input is told from a refused one, and the event once the errors are fixed."""
    explanation = mapped.explanation or {}
    found = sorted(f.split(".", 1)[1] for f in explanation.get("fields", ())
                   if f.startswith("user_data."))
    entry = {"index": index, "errors": list(mapped.reasons), "match_keys_found": found}
    if "draft" in explanation:
        entry["draft"] = explanation["draft"]
    return entry


def enricher_for(path: str | None, settings) -> Enricher | None:
    """The enrichment step over a profiles file, or None (no profiles: as without Firestore)."""
    if not path:
        return None
    return Enricher(ProfilesFile.load(path), writeback=settings.profile_writeback)

