"""Embedded PostgreSQL, Valkey and S3 for development and tests: ``python -m config.devstack``.

See ``launcher`` for the command line; ``processes`` holds the plumbing ``make dev`` shares.
"""
