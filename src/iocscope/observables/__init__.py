"""Where indicators live in a Wazuh alert, and how to pull them out."""
