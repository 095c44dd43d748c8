"""Enrichment from Firestore profiles (filled in by the enrichment work; none wired yet)."""

from __future__ import annotations


def build_enricher(settings):
    return None
