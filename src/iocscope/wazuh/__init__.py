"""Wazuh integration: the scripts Wazuh runs, the spool, the daemon and the queue socket."""
