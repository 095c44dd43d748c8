"""Adapters: the only modules that import Google Cloud or HTTP libraries."""
