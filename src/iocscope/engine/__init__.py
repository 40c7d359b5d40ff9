"""The lookup pipeline: cache, limits, scoring and fan-out."""
