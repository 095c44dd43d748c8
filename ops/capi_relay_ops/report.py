"""``capi-relay report``: match quality from what the relay logged, as a table or one HTML page.

The record is the functions' structured log: one JSON object per line as they print it (the
files ``make dev`` / ``LocalStack(log_dir=...)`` write), a Cloud Logging export (JSON lines of
LogEntry objects, the line in ``jsonPayload``), or ``gcloud logging read --format=json`` output
(one JSON array of them). It reads:

- ``sent`` (processor): ``match_keys``, per event name the events Meta accepted and how many
  carried each user_data key (names and counts, never values);
- ``sent``'s ``enriched_keys``: per event name, the events profile enrichment added keys to and
  how many got each key (logs before issue 13 have an ``enriched`` line per event instead;
  both are read);
- ``dead-lettered`` / ``undecodable message dead-lettered``: reasons per event name;
- ``not sent: consent``: consent drops per event name;
- ``ingested`` (ingest), ``rejected: insufficient customer information`` (process; ingest
  before issue 15), token errors.

"Keys per event before enrichment" is the keys sent minus the keys enrichment added, per event
name (from logs before issue 13, slightly low: an enriched event that was then dead-lettered
counted as enriched). With
``--dataset-quality`` it adds Meta's Event Match Quality per event name from the Dataset
Quality API (GET /{version}/dataset_quality), when the token is allowed to read it.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator, Mapping

from capi_relay.core.model import HASHED_KEYS, NEVER_HASHED_KEYS

KEY_ORDER = HASHED_KEYS + NEVER_HASHED_KEYS
SHORT = {"client_ip_address": "ip", "client_user_agent": "ua", "external_id": "ext_id"}
UNDECODABLE = "(undecodable message)"


@dataclass
class EventStats:
    """What the relay recorded for one event name."""

    sent: int = 0
    keys: Counter = field(default_factory=Counter)           # key -> events that carried it
    enriched_events: int = 0
    enriched_keys: Counter = field(default_factory=Counter)  # key -> events it was added to
    dead: Counter = field(default_factory=Counter)           # reason -> events
    consent: Counter = field(default_factory=Counter)        # consent decision -> events

    def share(self, key: str) -> float:
        return self.keys[key] / self.sent if self.sent else 0.0

    @property
    def keys_after(self) -> float:
        return sum(self.keys.values()) / self.sent if self.sent else 0.0

    @property
    def keys_before(self) -> float:
        if not self.sent:
            return 0.0
        return max(0, sum(self.keys.values()) - sum(self.enriched_keys.values())) / self.sent


@dataclass
class Report:
    events: dict[str, EventStats] = field(default_factory=dict)
    accepted: int = 0
    rejected: int = 0
    insufficient: int = 0
    token_errors: int = 0
    #: several pixels (PIXELS): events each pixel received, and events no route took
    sent_by_pixel: Counter = field(default_factory=Counter)
    unrouted: int = 0
    first: float | None = None
    last: float | None = None
    lines: int = 0
    unreadable: int = 0

    def stats(self, name: Any) -> EventStats:
        return self.events.setdefault(str(name) if name is not None else "(unknown)",
                                      EventStats())

    def keys_seen(self) -> list[str]:
        seen = {k for s in self.events.values() for k in s.keys}
        return [k for k in KEY_ORDER if k in seen] + sorted(seen - set(KEY_ORDER))


# --- reading ----------------------------------------------------------------------------------

def parse_time(value: Any) -> float | None:
    """Epoch seconds from a log line's ``time`` or a LogEntry's RFC 3339 ``timestamp``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    # Cloud Logging writes nanoseconds; datetime takes at most microseconds.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _entries(text: str) -> Iterator[Any]:
    stripped = text.lstrip()
    if stripped.startswith("["):  # gcloud logging read --format=json
        try:
            yield from json.loads(stripped)
            return
        except ValueError:
            pass
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            yield None  # functions-framework's own output, tracebacks: not ours
            continue
        try:
            yield json.loads(line)
        except ValueError:
            yield None


def records(texts: Iterable[str]) -> Iterator[tuple[float | None, dict[str, Any] | None]]:
    """(time, payload) of every line; payload None for a line that is not a relay log line."""
    for text in texts:
        for entry in _entries(text):
            if not isinstance(entry, dict):
                yield None, None
                continue
            if isinstance(entry.get("jsonPayload"), dict):  # a LogEntry
                payload = entry["jsonPayload"]
                moment = parse_time(entry.get("timestamp")) or parse_time(payload.get("time"))
            else:
                payload = entry
                moment = parse_time(entry.get("time"))
            yield moment, payload if isinstance(payload.get("message"), str) else None


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def build_report(texts: Iterable[str], *, since: float | None = None,
                 until: float | None = None) -> Report:
    report = Report()
    for moment, line in records(texts):
        if line is None:
            report.unreadable += 1
            continue
        if (since is not None or until is not None) and moment is None:
            report.unreadable += 1
            continue
        if (since is not None and moment < since) or (until is not None and moment >= until):
            continue
        if _read_line(report, line):
            report.lines += 1
            if moment is not None:
                report.first = moment if report.first is None else min(report.first, moment)
                report.last = moment if report.last is None else max(report.last, moment)
    return report


def _read_line(report: Report, line: Mapping[str, Any]) -> bool:
    """Adds one log line to the report; False when it says nothing the report reads."""
    message, component = line.get("message"), line.get("component")
    if component == "process":
        if message == "sent" and line.get("pixel_id"):
            report.sent_by_pixel[str(line["pixel_id"])] += _count(line.get("batch_size"))
        if message == "not sent: no pixel route":
            report.unrouted += _count(line.get("count"))
            return True
        if message == "sent" and isinstance(line.get("match_keys"), dict):
            for name, events, keys in _key_rows(line["match_keys"]):
                stats = report.stats(name)
                stats.sent += events
                stats.keys.update(keys)
            for name, events, keys in _key_rows(line.get("enriched_keys")):
                stats = report.stats(name)
                stats.enriched_events += events
                stats.enriched_keys.update(keys)
            return True
        if message == "enriched":  # one line per event, as logged before issue 13
            added = line.get("enriched_keys") or []
            if added:
                stats = report.stats(line.get("event_name"))
                stats.enriched_events += 1
                stats.enriched_keys.update(k for k in added if isinstance(k, str))
            return True
        if message == "dead-lettered":
            report.stats(line.get("event_name")).dead[str(line.get("reason"))] += 1
            return True
        if message == "undecodable message dead-lettered":
            report.stats(UNDECODABLE).dead["undecodable"] += 1
            return True
        if message == "not sent: consent":
            report.stats(line.get("event_name")).consent[str(line.get("consent"))] += 1
            return True
        if message == "rejected: insufficient customer information":  # judged after enrichment
            report.insufficient += _count(line.get("count"))
            return True
        if line.get("cause") == "token":
            report.token_errors += 1
            return True
    elif component == "ingest":
        if message == "ingested":
            report.accepted += _count(line.get("accepted"))
            report.rejected += _count(line.get("rejected"))
            return True
        if message == "rejected: insufficient customer information":
            report.insufficient += _count(line.get("count"))
            return True
    return False


# --- Meta's Dataset Quality API ------------------------------------------------------------------

@dataclass(frozen=True)
class QualityRow:
    event_name: str
    score: float | None
    coverage: dict[str, float]  # identifier -> percentage


def parse_dataset_quality(body: Mapping[str, Any]) -> list[QualityRow]:
    rows = []
    for item in body.get("web") or []:
        if not isinstance(item, dict):
            continue
        emq = item.get("event_match_quality") or {}
        score = emq.get("composite_score") if isinstance(emq, dict) else None
        coverage = {}
        for feedback in (emq.get("match_key_feedback") or []) if isinstance(emq, dict) else []:
            if isinstance(feedback, dict) and isinstance(feedback.get("coverage"), dict):
                percentage = feedback["coverage"].get("percentage")
                if isinstance(percentage, (int, float)):
                    coverage[str(feedback.get("identifier"))] = float(percentage)
        rows.append(QualityRow(str(item.get("event_name")),
                               float(score) if isinstance(score, (int, float)) else None,
                               coverage))
    return rows


def fetch_dataset_quality(env: Mapping[str, str]) -> tuple[list[QualityRow] | None, str]:
    """(rows, note): rows None when the token may not read the API (note says why)."""
    from capi_relay import bootstrap
    from capi_relay.adapters.graph import GraphCapiClient
    from capi_relay.config import Settings
    from capi_relay.core.errors import ConfigurationError, RelayError

    try:
        settings = Settings.from_env(env, need=("token",))
        token = bootstrap.token_source(settings).get()
    except (ConfigurationError, RelayError) as exc:
        return None, f"not read: {exc}"
    with GraphCapiClient(settings.graph_url, settings.api_version, settings.pixel_id,
                         timeout=settings.graph_timeout) as client:
        outcome, body = client.dataset_quality(token)
    if body is None:
        return None, (f"not available with this token ({outcome.verdict.value}, code "
                      f"{outcome.code}: {outcome.message})")
    return parse_dataset_quality(body), f"pixel {settings.pixel_id}, {settings.api_version}"


# --- terminal ----------------------------------------------------------------------------------

def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]
    lines = ["  ".join(str(c).rjust(w) if i else str(c).ljust(w)
                       for i, (c, w) in enumerate(zip(row, widths, strict=True)))
             for row in [header, ["-" * w for w in widths], *rows]]
    return "\n".join(line.rstrip() for line in lines)


def _when(moment: float | None) -> str:
    if moment is None:
        return "?"
    return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _pct(value: float) -> str:
    return f"{value * 100:.0f}%"


def render_text(report: Report, quality: list[QualityRow] | None = None,
                quality_note: str | None = None) -> str:
    out = [f"capi-relay report: {report.lines} log line(s), {_when(report.first)} to "
           f"{_when(report.last)}",
           f"ingest: {report.accepted} accepted, {report.rejected} rejected "
           f"({report.insufficient} for insufficient customer information); "
           f"token errors: {report.token_errors}", ""]
    if len(report.sent_by_pixel) > 1 or report.unrouted:
        per_pixel = ", ".join(f"{pixel} {n}" for pixel, n in sorted(report.sent_by_pixel.items()))
        out[-1:-1] = [f"pixels: sent {per_pixel or 'nothing'}; no pixel route: "
                      f"{report.unrouted}"]
    keys = report.keys_seen()
    names = sorted(report.events)
    sent = [n for n in names if report.events[n].sent]
    if sent:
        out.append("Match keys sent (share of events carrying each key)")
        header = ["event_name", "sent", "keys/event before", "after"] + \
            [SHORT.get(k, k) for k in keys]
        rows = [[n, str(s.sent), f"{s.keys_before:.1f}", f"{s.keys_after:.1f}"] +
                [_pct(s.share(k)) for k in keys]
                for n, s in ((n, report.events[n]) for n in sent)]
        out += [_table(header, rows), ""]
    else:
        out += ["No sent batches with match keys in this range.", ""]
    reasons = sorted({r for s in report.events.values() for r in s.dead})
    decisions = sorted({r for s in report.events.values() for r in s.consent})
    if reasons or decisions:
        out.append("Not sent: dead-lettered (by reason) and dropped for consent (by decision)")
        header = ["event_name"] + [f"dead:{r}" for r in reasons] + \
            [f"consent:{d}" for d in decisions]
        rows = [[n] + [str(report.events[n].dead[r]) for r in reasons] +
                [str(report.events[n].consent[d]) for d in decisions]
                for n in names if report.events[n].dead or report.events[n].consent]
        out += [_table(header, rows), ""]
    if quality is not None or quality_note:
        out.append(f"Meta's Event Match Quality (Dataset Quality API): {quality_note or ''}")
        if quality:
            idents = sorted({i for q in quality for i in q.coverage})
            rows = [[q.event_name, "-" if q.score is None else f"{q.score:.1f}/10"] +
                    [f"{q.coverage[i]:.0f}%" if i in q.coverage else "" for i in idents]
                    for q in quality]
            out += [_table(["event_name", "EMQ"] + idents, rows)]
        out.append("")
    return "\n".join(out)


# --- HTML --------------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1d2430}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}
.muted{color:#5b6575}.cards{display:flex;gap:12px;flex-wrap:wrap;margin:16px 0}
.card{border:1px solid #d6dbe3;border-radius:6px;padding:8px 14px;min-width:120px}
.card b{display:block;font-size:20px}
table{border-collapse:collapse;margin:6px 0 12px}th,td{border:1px solid #d6dbe3;padding:3px 8px;
text-align:right}th:first-child,td:first-child{text-align:left}th{background:#f1f4f8}
.charts{display:flex;flex-wrap:wrap;gap:18px}figure{margin:0}
figcaption{font-weight:600;margin:4px 0}
svg text{font:12px system-ui,sans-serif;fill:#1d2430}
"""
_COLORS = ["#3b6fd8", "#e0823a", "#3aa37a", "#c2416b", "#8a5cc9", "#9a8a2b", "#2b8fa8"]


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _bars(title: str, rows: list[tuple[str, float, str]], *, scale: float = 1.0,
          chart: str = "bars", colors: list[str] | None = None) -> str:
    """A horizontal bar chart: (label, value in 0..scale, text beside the bar)."""
    colors = colors or _COLORS
    bar_w, row_h = 280, 20
    label_w = max([110] + [7 * len(label) + 10 for label, _, _ in rows])
    width = label_w + bar_w + 60
    height = row_h * len(rows) + 8
    parts = [f'<figure><figcaption>{_e(title)}</figcaption>'
             f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" data-chart="{_e(chart)}"><title>{_e(title)}</title>']
    for i, (label, value, text) in enumerate(rows):
        y = 4 + i * row_h
        length = 0 if scale <= 0 else round(bar_w * max(0.0, min(value / scale, 1.0)), 1)
        parts.append(f'<text x="0" y="{y + 14}">{_e(label)}</text>'
                     f'<rect x="{label_w}" y="{y + 3}" width="{bar_w}" height="14" '
                     f'fill="#eef1f5"/>'
                     f'<rect class="bar" x="{label_w}" y="{y + 3}" width="{length}" height="14" '
                     f'fill="{colors[i % len(colors)]}" data-label="{_e(label)}" '
                     f'data-value="{value:.4f}"/>'
                     f'<text x="{label_w + bar_w + 6}" y="{y + 14}">{_e(text)}</text>')
    parts.append("</svg></figure>")
    return "".join(parts)


def _html_table(header: list[str], rows: list[list[str]], name: str) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table data-table="{_e(name)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody>' \
           f'</table>'


def render_html(report: Report, quality: list[QualityRow] | None = None,
                quality_note: str | None = None) -> str:
    keys = report.keys_seen()
    names = sorted(report.events)
    sent = [n for n in names if report.events[n].sent]
    cards = [("accepted at ingest", report.accepted), ("rejected at ingest", report.rejected),
             ("insufficient customer information", report.insufficient),
             ("sent to Meta", sum(report.events[n].sent for n in names)),
             ("dead-lettered", sum(sum(s.dead.values()) for s in report.events.values())),
             ("dropped for consent", sum(sum(s.consent.values()) for s in report.events.values())),
             ("token errors", report.token_errors)]
    if len(report.sent_by_pixel) > 1 or report.unrouted:
        cards += [(f"sent to pixel {pixel}", n)
                  for pixel, n in sorted(report.sent_by_pixel.items())]
        cards.append(("no pixel route", report.unrouted))
    parts = [
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        # nothing on this page may load anything: every chart is inline SVG
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'\">",
        "<title>capi-relay match quality</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>capi-relay: match quality from what the relay sent</h1>",
        f"<p class=\"muted\">{report.lines} log line(s), {_e(_when(report.first))} to "
        f"{_e(_when(report.last))}. Key names and counts only; the relay never logs values.</p>",
        "<div class=\"cards\">" + "".join(f"<div class=\"card\"><b>{v}</b>{_e(k)}</div>"
                                          for k, v in cards) + "</div>",
    ]
    parts.append("<h2>Match keys sent, per event name</h2>")
    if sent:
        header = ["event_name", "sent", "keys/event before enrichment", "after"] + \
            [SHORT.get(k, k) for k in keys]
        rows = [[n, str(report.events[n].sent), f"{report.events[n].keys_before:.1f}",
                 f"{report.events[n].keys_after:.1f}"] +
                [_pct(report.events[n].share(k)) for k in keys] for n in sent]
        parts.append(_html_table(header, rows, "match-keys"))
        parts.append("<p class=\"muted\">" + ", ".join(
            f"{_e(v)} = {_e(k)}" for k, v in SHORT.items()) + "</p>")
        parts.append("<div class=\"charts\">")
        for n in sent:
            s = report.events[n]
            parts.append(_bars(f"{n}: share of {s.sent} event(s) carrying each key",
                               [(SHORT.get(k, k), s.share(k), _pct(s.share(k))) for k in keys],
                               chart="key-share"))
        top = max([report.events[n].keys_after for n in sent] + [1.0])
        rows_ba = []
        for n in sent:
            s = report.events[n]
            rows_ba += [(f"{n} before", s.keys_before, f"{s.keys_before:.1f}"),
                        (f"{n} after", s.keys_after, f"{s.keys_after:.1f}")]
        parts.append(_bars("Keys per event, before and after enrichment", rows_ba, scale=top,
                           chart="keys-per-event", colors=["#9db4e8", "#3b6fd8"]))
        parts.append("</div>")
    else:
        parts.append("<p>No sent batches with match keys in this range.</p>")

    parts.append("<h2>Not sent: dead-letter reasons and consent drops</h2>")
    reasons = sorted({r for s in report.events.values() for r in s.dead})
    decisions = sorted({r for s in report.events.values() for r in s.consent})
    lost = [n for n in names if report.events[n].dead or report.events[n].consent]
    if lost:
        header = ["event_name"] + [f"dead-lettered: {r}" for r in reasons] + \
            [f"consent: {d}" for d in decisions]
        rows = [[n] + [str(report.events[n].dead[r]) for r in reasons] +
                [str(report.events[n].consent[d]) for d in decisions] for n in lost]
        parts.append(_html_table(header, rows, "not-sent"))
        totals = Counter()
        for s in report.events.values():
            totals.update({f"dead-lettered: {r}": v for r, v in s.dead.items()})
            totals.update({f"consent: {d}": v for d, v in s.consent.items()})
        top = max(totals.values())
        parts.append(_bars("Events not sent, by reason", [(k, v, str(v)) for k, v in
                                                          sorted(totals.items())],
                           scale=top, chart="not-sent"))
    else:
        parts.append("<p>Every event in this range was sent.</p>")

    if quality is not None or quality_note:
        parts.append("<h2>Meta's Event Match Quality (Dataset Quality API)</h2>")
        parts.append(f"<p class=\"muted\">{_e(quality_note or '')}</p>")
        if quality:
            idents = sorted({i for q in quality for i in q.coverage})
            rows = [[q.event_name, "-" if q.score is None else f"{q.score:.1f}"] +
                    [f"{q.coverage[i]:.0f}%" if i in q.coverage else "" for i in idents]
                    for q in quality]
            parts.append(_html_table(["event_name", "EMQ (0-10)"] + idents, rows,
                                     "dataset-quality"))
            parts.append(_bars("Event Match Quality per event name",
                               [(q.event_name, q.score or 0.0,
                                 "-" if q.score is None else f"{q.score:.1f}/10")
                                for q in quality], scale=10.0, chart="emq"))
    parts.append("</body></html>")
    return "\n".join(parts)


# --- command -----------------------------------------------------------------------------------

def parse_moment(text: str) -> float:
    """ISO 8601 (a date or a date and time, UTC unless it says otherwise) or epoch seconds."""
    moment = parse_time(text)
    if moment is None:
        raise ValueError(f"not a date, time or epoch seconds: {text!r}")
    return moment


def cmd_report(args: argparse.Namespace) -> int:
    import os

    try:
        since = parse_moment(args.since) if args.since else None
        until = parse_moment(args.until) if args.until else None
        texts = [sys.stdin.read()] if not args.files or args.files == ["-"] else \
            [open(path, encoding="utf-8", errors="replace").read() for path in args.files]
    except (OSError, ValueError) as exc:
        print(f"capi-relay report: {exc}", file=sys.stderr)
        return 2
    report = build_report(texts, since=since, until=until)
    quality, note = None, None
    if args.dataset_quality:
        quality, note = fetch_dataset_quality(os.environ)
    print(render_text(report, quality, note))
    if args.html:
        with open(args.html, "w", encoding="utf-8") as handle:
            handle.write(render_html(report, quality, note))
        print(f"wrote {args.html}")
    if report.lines == 0:
        print("capi-relay report: no relay log lines in the input (and range)", file=sys.stderr)
        return 1
    return 0


def register(sub) -> None:
    parser = sub.add_parser("report", help="match quality from the relay's logs")
    parser.add_argument("files", nargs="*", help="log files: JSON lines as the functions print "
                        "them, a Cloud Logging export, or `gcloud logging read --format=json` "
                        "output (default: stdin)")
    parser.add_argument("--since", help="from this time (ISO 8601 or epoch seconds)")
    parser.add_argument("--until", help="up to this time, excluded")
    parser.add_argument("--html", metavar="FILE", help="also write one self-contained HTML page")
    parser.add_argument("--dataset-quality", action="store_true",
                        help="add Meta's Event Match Quality (Dataset Quality API; the token "
                             "is read from the settings, as the processor reads it)")
    parser.set_defaults(run=cmd_report)


def _key_rows(table: Any):
    """(event name, events, {key: count}) per row of a "sent" line's per-event-name key table
    ({name: {"events": n, key: n, ...}}); malformed rows are skipped."""
    for name, row in (table.items() if isinstance(table, dict) else ()):
        if isinstance(row, dict):
            yield name, _count(row.get("events")), Counter(
                {key: _count(n) for key, n in row.items() if key != "events"})
