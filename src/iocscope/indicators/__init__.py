"""Indicator parsing, normalisation and scope: pure functions, no I/O."""
