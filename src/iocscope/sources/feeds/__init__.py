"""Bulk feeds: catalogue, format parsers, in-memory indexes and sync."""
