"""iocscope: threat-intelligence enrichment for Wazuh alerts."""

__version__ = "0.1.0"
