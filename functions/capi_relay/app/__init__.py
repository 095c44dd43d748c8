"""Services over ports: ingest, process, the delivery ledger, enrichment."""
