"""The ``aeserve`` command line: serve, package, fit-csv, check, list (see :mod:`aeserve.cli`).

Importing this package does no work and never imports torch.
"""
