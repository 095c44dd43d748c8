"""capi-relay: deliver web and server-side GTM events to Meta's Conversions API."""

__version__ = "0.1.0"
