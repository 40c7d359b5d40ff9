"""Intelligence sources: the contract, the registry and one module per source."""
