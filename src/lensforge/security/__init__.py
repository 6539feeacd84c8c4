"""API keys, scopes, per-key rate limits and the audit trail."""
