"""Tests of the Wazuh integration: scripts, spool, daemon and queue socket."""
