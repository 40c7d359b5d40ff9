"""The iocscope command line, one module per command group."""
