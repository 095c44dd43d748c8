"""Firestore backends: idempotency records and user profiles (follows FIRESTORE_EMULATOR_HOST)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from capi_relay.core.errors import StoreUnavailable


def _client(project: str, database: str | None = None):
    from google.cloud import firestore

    return firestore.Client(project=project, database=database or "(default)")


def _to_store(record: dict[str, Any]) -> dict[str, Any]:
    out = dict(record)
    if "expire_at" in out:  # Firestore TTL policies need a timestamp field
        out["expire_at"] = datetime.fromtimestamp(out["expire_at"], tz=timezone.utc)
    return out


def _from_store(record: dict[str, Any]) -> dict[str, Any]:
    out = dict(record)
    if isinstance(out.get("expire_at"), datetime):
        out["expire_at"] = out["expire_at"].timestamp()
    return out


class FirestoreIdempotencyBackend:
    def __init__(self, project: str, collection: str, *, client=None):
        self.project = project
        self.collection = collection
        self._db = client

    def _doc(self, key: str):
        if self._db is None:
            self._db = _client(self.project)
        return self._db.collection(self.collection).document(key)

    def get(self, key: str):
        from google.api_core import exceptions

        try:
            snapshot = self._doc(key).get()
        except exceptions.GoogleAPICallError as exc:
            raise StoreUnavailable(f"idempotency read failed: {type(exc).__name__}") from exc
        if not snapshot.exists:
            return None
        return _from_store(snapshot.to_dict()), snapshot.update_time

    def create(self, key: str, record: dict[str, Any]) -> bool:
        from google.api_core import exceptions

        try:
            self._doc(key).create(_to_store(record))
        except exceptions.AlreadyExists:
            return False
        except exceptions.GoogleAPICallError as exc:
            raise StoreUnavailable(f"idempotency create failed: {type(exc).__name__}") from exc
        return True

    def replace(self, key: str, record: dict[str, Any], version: Any) -> bool:
        from google.api_core import exceptions

        doc = self._doc(key)
        try:
            doc.set(_to_store(record), merge=False) if version is None else doc.update(
                _to_store(record), option=self._db.write_option(last_update_time=version))
        except (exceptions.FailedPrecondition, exceptions.NotFound, exceptions.Aborted):
            return False
        except exceptions.GoogleAPICallError as exc:
            raise StoreUnavailable(f"idempotency update failed: {type(exc).__name__}") from exc
        return True

    def put(self, key: str, record: dict[str, Any]) -> None:
        from google.api_core import exceptions

        try:
            self._doc(key).set(_to_store(record))
        except exceptions.GoogleAPICallError as exc:
            raise StoreUnavailable(f"idempotency write failed: {type(exc).__name__}") from exc


class FirestoreProfileStore:
    """Profile and link documents in one collection: one ``get_all`` per lookup, batched writes."""

    #: Firestore's limit on writes in one batch
    MAX_BATCH = 500

    def __init__(self, project: str, collection: str, *, client=None, timeout: float = 5.0):
        self.project = project
        self.collection = collection
        self.timeout = timeout  # the hot path must not hang on a slow Firestore
        self._db = client

    def _collection(self):
        if self._db is None:
            self._db = _client(self.project)
        return self._db.collection(self.collection)

    def fetch(self, doc_ids):
        from google.api_core import exceptions

        if not doc_ids:
            return {}
        collection = self._collection()
        refs = [collection.document(doc_id) for doc_id in doc_ids]
        try:
            snapshots = list(self._db.get_all(refs, timeout=self.timeout))
        except exceptions.GoogleAPIError as exc:
            raise StoreUnavailable(f"profile read failed: {type(exc).__name__}") from exc
        return {s.id: _from_store(s.to_dict()) for s in snapshots if s.exists}

    def save(self, writes) -> int:
        from google.api_core import exceptions

        collection = self._collection()
        done = 0
        for start in range(0, len(writes), self.MAX_BATCH):
            batch = self._db.batch()
            chunk = writes[start:start + self.MAX_BATCH]
            for write in chunk:
                batch.set(collection.document(write.doc_id), _to_store(dict(write.data)),
                          merge=write.merge)
            try:
                batch.commit(timeout=self.timeout)
            except exceptions.GoogleAPIError as exc:
                raise StoreUnavailable(f"profile write failed after {done} document(s): "
                                       f"{type(exc).__name__}") from exc
            done += len(chunk)
        return done


#: Firestore's limit on the values of one ``array_contains_any`` filter
ANY_LIMIT = 30


class FirestoreRunStore:
    """RunStore: the puller's run records, in the idempotency collection (its TTL policy on
    ``expire_at`` covers them). ``find`` is one query per 30 keys, billed one read per
    record returned (at least one per query)."""

    def __init__(self, project: str, collection: str, *, client=None, timeout: float = 10.0):
        self.project = project
        self.collection = collection
        self.timeout = timeout
        self._db = client

    def _collection(self):
        if self._db is None:
            self._db = _client(self.project)
        return self._db.collection(self.collection)

    def find(self, keys):
        from google.api_core import exceptions
        from google.cloud.firestore_v1.base_query import FieldFilter

        found: dict[str, dict[str, Any]] = {}
        keys = list(dict.fromkeys(keys))
        try:
            for start in range(0, len(keys), ANY_LIMIT):
                query = self._collection().where(
                    filter=FieldFilter("keys", "array_contains_any",
                                       keys[start:start + ANY_LIMIT]))
                for snapshot in query.stream(timeout=self.timeout):
                    found[snapshot.id] = _from_store(snapshot.to_dict())
        except exceptions.GoogleAPICallError as exc:
            raise StoreUnavailable(f"run record query failed: {type(exc).__name__}") from exc
        return list(found.values())

    def create(self, run_id: str, record: dict[str, Any]) -> None:
        from google.api_core import exceptions

        try:
            self._collection().document(run_id).create(_to_store(record),
                                                       timeout=self.timeout)
        except exceptions.GoogleAPICallError as exc:
            raise StoreUnavailable(f"run record write failed: {type(exc).__name__}") from exc

    def put(self, run_id: str, record: dict[str, Any]) -> None:
        from google.api_core import exceptions

        try:
            self._collection().document(run_id).set(_to_store(record), timeout=self.timeout)
        except exceptions.GoogleAPICallError as exc:
            raise StoreUnavailable(f"run record write failed: {type(exc).__name__}") from exc
