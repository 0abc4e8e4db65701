"""HTTP API (FastAPI): studies and the audit trail behind bearer tokens with roles; every request audited."""
