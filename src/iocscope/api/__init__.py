"""The HTTP service: REST endpoints, API keys, limits, metrics and the analyst page."""
