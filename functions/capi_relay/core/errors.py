"""The relay's exception tree; every failure the service acts on is one of these.

    RelayError
    ├── PermanentError            retrying cannot help
    │   ├── InvalidEvent          unreadable message or event (names the field, never the value)
    │   └── ConfigurationError    a required setting is missing or malformed
    └── TransientError            may pass on retry: raise so Pub/Sub redelivers
        ├── GraphUnavailable      5xx, timeout, connection error, transient Graph codes
        ├── Throttled             Graph rate limits (4, 17, 32, 613, 80000-80014 ...)
        ├── TokenProblem          token expired, revoked or lacking permission (held, not dropped)
        ├── StoreUnavailable      Firestore could not be reached
        ├── PublishFailed         Pub/Sub did not take the message
        └── KeysUnavailable       the source keys secret has never been readable (answered 503)

An event Meta refuses, or one outside its time window, is not an exception: the processor
records it as a ``delivery.DeadLetter`` (reason, code, subcode, message) and acknowledges it.
"""

from __future__ import annotations


class RelayError(Exception):
    """Base of every error the relay raises on purpose."""


class PermanentError(RelayError):
    """Retrying the same input cannot succeed."""


class TransientError(RelayError):
    """The same input may succeed later; let the transport redeliver it."""

    #: seconds a caller should wait before trying again, when the cause says so
    retry_after: float | None = None


class InvalidEvent(PermanentError):
    def __init__(self, reasons: list[str] | tuple[str, ...]):
        self.reasons = tuple(reasons)
        super().__init__("; ".join(self.reasons))


class ConfigurationError(PermanentError):
    pass


class GraphUnavailable(TransientError):
    pass


class Throttled(TransientError):
    def __init__(self, message: str, retry_after: float | None = None):
        self.retry_after = retry_after
        super().__init__(message)


class TokenProblem(TransientError):
    pass


class StoreUnavailable(TransientError):
    pass


class PublishFailed(TransientError):
    pass


class KeysUnavailable(TransientError):
    pass
