"""SecretSource port on Secret Manager, cached per instance; and a fixed token for local runs."""

from __future__ import annotations

import threading

from capi_relay.core.errors import TransientError


class SecretManagerSource:
    def __init__(self, version_name: str, client=None):
        self.version_name = version_name
        self._client = client
        self._token: str | None = None
        self._lock = threading.Lock()

    def get(self, *, refresh: bool = False) -> str:
        with self._lock:
            if self._token is None or refresh:
                self._token = self._read()
            return self._token

    def _read(self) -> str:
        try:
            if self._client is None:
                from google.cloud import secretmanager

                self._client = secretmanager.SecretManagerServiceClient()
            response = self._client.access_secret_version(name=self.version_name)
            token = response.payload.data.decode("utf-8").strip()
        except Exception as exc:  # the message never carries the secret's value
            raise TransientError(f"reading {self.version_name} failed: "
                                 f"{type(exc).__name__}") from exc
        if not token:
            raise TransientError(f"{self.version_name} is empty")
        return token

    def __repr__(self) -> str:
        return f"SecretManagerSource({self.version_name!r})"


class StaticSecret:
    """META_ACCESS_TOKEN from the environment (local runs, the Graph stand-in)."""

    def __init__(self, token: str):
        self._token = token

    def get(self, *, refresh: bool = False) -> str:
        return self._token

    def __repr__(self) -> str:
        return "StaticSecret(***)"
