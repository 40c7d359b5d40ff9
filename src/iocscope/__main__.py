"""Run the command line with ``python -m iocscope``."""

from iocscope.cli.main import main

main()
