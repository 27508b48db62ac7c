"""One module per benchmark group (see :mod:`bench.runner` for the interface)."""
