"""The ``dsrter`` command: ``main`` builds the parser; one module per command or ``command_target``."""
