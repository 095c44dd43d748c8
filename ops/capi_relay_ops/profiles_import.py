"""`capi-relay profiles import FILE`: load a CRM export into the profiles collection, hashed.

Reads CSV (any of , ; tab |, UTF-8 with or without BOM) or JSON lines: a user id plus any of
email, phone, first/last name, city, state, zip, country, birth date, gender, under common
header spellings (``profiles.CRM_HEADERS``). Each value is normalized and hashed with
``normalize.prepare``, so Firestore holds exactly what the relay would send. Rows are numbered
by their line in the file; a rejected row or an unusable value is reported by row number and
column name, never by value. Writes go in Firestore WriteBatches of at most 500 documents
(follows FIRESTORE_EMULATOR_HOST). ``--dry-run`` writes nothing and reports the same.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import sys
import time
from typing import Any, Iterator, Mapping, TextIO

from capi_relay.core.normalize import normalize_country
from capi_relay.core.profiles import CrmRow, ImportPlan, header_key, plan_import, prepare_row

FORMATS = ("csv", "jsonl")


def guess_format(path: str) -> str:
    return "jsonl" if path.lower().endswith((".jsonl", ".ndjson", ".json")) else "csv"


def read_csv(stream: TextIO) -> tuple[Iterator[tuple[int, Mapping[str, Any] | None]], list[str]]:
    """(line number, row) pairs and the header; the delimiter is sniffed from the header."""
    first = stream.readline()
    try:
        dialect: Any = csv.Sniffer().sniff(first, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(itertools.chain([first], stream), dialect=dialect)
    header = list(reader.fieldnames or [])

    def rows():
        for row in reader:
            if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
                continue  # a blank line
            yield reader.line_num, {k: v for k, v in row.items() if k is not None}
    return rows(), header


def read_jsonl(stream: TextIO) -> tuple[Iterator[tuple[int, Mapping[str, Any] | None]], list[str]]:
    """(line number, object or None when the line is not a JSON object) pairs, and keys seen."""
    seen: list[str] = []

    def rows():
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError:
                value = None
            if not isinstance(value, dict):
                yield number, None
                continue
            seen.extend(k for k in value if k not in seen)
            yield number, value
    return rows(), seen


def prepare_rows(rows, *, default_country: str | None) -> Iterator[CrmRow]:
    for number, values in rows:
        if values is None:
            yield CrmRow(number, None, ("row: not a JSON object",))
        else:
            yield prepare_row(values, row=number, default_country=default_country)


def report(plan: ImportPlan, columns: list[str], *, written: int, dry_run: bool,
           batches: int) -> dict[str, Any]:
    """The import's outcome: counts, and rows by number with column names, never values."""
    return {
        "summary": {"rows": plan.rows, "profiles": len(plan.writes), "written": written,
                    "rejected": len(plan.rejected), "batches": batches, "dry_run": dry_run},
        "rejected": [{"row": r.row, "errors": list(r.errors),
                      **({"fields": list(r.dropped)} if r.dropped else {})}
                     for r in plan.rejected],
        "dropped": [{"row": r.row, "fields": list(r.dropped)} for r in plan.dropped
                    if r.profile is not None],
        "ignored_columns": [c for c in columns if c and header_key(c) is None],
    }


def cmd_import(args: argparse.Namespace) -> int:
    fmt = args.format or guess_format(args.file)
    if args.country and normalize_country(args.country) is None:
        print("capi-relay profiles import: --country must be a country code or name",
              file=sys.stderr)
        return 2
    try:
        stream = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8-sig",
                                                         newline="")
    except OSError as exc:
        print(f"capi-relay profiles import: cannot open file: {type(exc).__name__}",
              file=sys.stderr)
        return 2
    try:
        with stream:
            rows, columns = (read_jsonl if fmt == "jsonl" else read_csv)(stream)
            plan = plan_import(prepare_rows(rows, default_country=args.country), time.time())
    except (UnicodeDecodeError, csv.Error) as exc:
        print(f"capi-relay profiles import: cannot read {fmt}: {type(exc).__name__}",
              file=sys.stderr)
        return 2
    for row in plan.rejected:
        print(f"row {row.row}: rejected: {'; '.join(row.errors)}", file=sys.stderr)
    for row in plan.dropped:
        print(f"row {row.row}: not a valid value: {', '.join(row.dropped)}", file=sys.stderr)

    written = batches = 0
    if not args.dry_run and plan.writes:
        project = args.project or os.environ.get("GOOGLE_CLOUD_PROJECT")
        if not project:
            print("capi-relay profiles import: --project or GOOGLE_CLOUD_PROJECT is required",
                  file=sys.stderr)
            return 2
        from capi_relay.adapters.firestore import FirestoreProfileStore
        from capi_relay.core.errors import StoreUnavailable

        store = FirestoreProfileStore(project, args.collection, timeout=60.0)
        try:
            written = store.save(plan.writes)
        except StoreUnavailable as exc:
            print(f"capi-relay profiles import: {exc}", file=sys.stderr)
            return 1
        batches = -(-written // store.MAX_BATCH)
    print(json.dumps(report(plan, columns, written=written, dry_run=args.dry_run,
                            batches=batches), indent=2))
    return 0


def register(sub) -> None:
    profiles = sub.add_parser("profiles", help="manage the profiles used for enrichment")
    actions = profiles.add_subparsers(dest="profiles_command", required=True)
    parser = actions.add_parser("import", help="load a CRM export (CSV or JSON lines), hashed")
    parser.add_argument("file", help="CRM export; '-' reads stdin")
    parser.add_argument("--format", choices=FORMATS,
                        help="csv or jsonl (default: from the file name, else csv)")
    parser.add_argument("--project", help="Google Cloud project (default: GOOGLE_CLOUD_PROJECT)")
    parser.add_argument("--collection", default=os.environ.get("PROFILES_COLLECTION")
                        or "profiles",
                        help="Firestore collection (default: PROFILES_COLLECTION or profiles)")
    parser.add_argument("--country",
                        help="country (alpha-2) for rows without one: phone, state and zip rules")
    parser.add_argument("--dry-run", action="store_true", help="report only, write nothing")
    parser.set_defaults(run=cmd_import)
