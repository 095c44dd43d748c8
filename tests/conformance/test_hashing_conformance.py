"""Conformance of user_data normalization and hashing to the table in hashing.json.

Each row names the key, the raw input, the optional country, the expected normalized text and
the expected wire hash, and cites where that expectation comes from (Meta's published example
or the rule it is derived from). Expected hashes are data: they were computed once when the
table was written (Meta's own where Meta publishes one), never by the code under test.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from pathlib import Path

import pytest

from capi_relay.core.model import HASHED_KEYS, NEVER_HASHED_KEYS
from capi_relay.core.normalize import is_sha256, normalize, prepare

TABLE = json.loads((Path(__file__).with_name("hashing.json")).read_text(encoding="utf-8"))
ROWS = TABLE["rows"]


def _row_id(row: dict) -> str:
    return f"{row['key']}:{row['input']!r}:{row.get('country')}"


@pytest.mark.parametrize("row", ROWS, ids=[_row_id(r) for r in ROWS])
def test_prepare_matches_table(row: dict) -> None:
    wire = prepare(row["key"], row["input"], country=row.get("country"))
    if row["key"] in HASHED_KEYS:
        assert wire == row["expected_hash"]
    else:
        assert wire == row["expected_normalized"]


NORMALIZED_ROWS = [  # hashed keys, except values passed through without normalizing
    r for r in ROWS
    if r["key"] in HASHED_KEYS
    and (r["expected_normalized"] is not None or r["expected_hash"] is None)
]


@pytest.mark.parametrize("row", NORMALIZED_ROWS, ids=_row_id)
def test_normalize_matches_table(row: dict) -> None:
    assert normalize(row["key"], row["input"], country=row.get("country")) == row[
        "expected_normalized"
    ]


@pytest.mark.parametrize("row", ROWS, ids=[_row_id(r) for r in ROWS])
def test_table_is_consistent(row: dict) -> None:
    """The data checks itself: each hash is the SHA-256 of its normalized text, sources cited."""
    assert row["key"] in HASHED_KEYS or row["key"] in NEVER_HASHED_KEYS
    assert row["source"].startswith(("derived: ", "https://")), "every row cites its source"
    if row["key"] in NEVER_HASHED_KEYS:
        assert row["expected_hash"] is None
        return
    if row["expected_normalized"] is not None:
        digest = hashlib.sha256(row["expected_normalized"].encode("utf-8")).hexdigest()
        assert row["expected_hash"] == digest
    if "decomposed" in row["source"]:
        assert not unicodedata.is_normalized("NFC", row["input"])


def test_table_covers_every_key_and_case() -> None:
    keys = {r["key"] for r in ROWS}
    assert set(HASHED_KEYS) <= keys
    assert {"client_ip_address", "client_user_agent", "fbc", "fbp"} <= keys
    assert len(ROWS) >= 60
    dropped = {r["key"] for r in ROWS if r["key"] in HASHED_KEYS and r["expected_hash"] is None}
    assert set(HASHED_KEYS) - {"external_id"} <= dropped, "each rule has a dropped example"
    passthrough = [r for r in ROWS if r["key"] in HASHED_KEYS
                   and r["expected_normalized"] is None and r["expected_hash"]]
    assert any(is_sha256(r["expected_hash"]) and r["input"] != r["expected_hash"]
               for r in passthrough), "an upper-case hash lowercased"
    assert any(not is_sha256(r["expected_hash"]) for r in passthrough), "a Parameter Builder value"
    published = [r for r in ROWS if r["source"].startswith("https://developers.facebook.com")
                 and "Expected SHA256 output" in r["source"]]
    assert {r["key"] for r in published} >= {"em", "ph", "fn"}

