"""A local stand-in for BabySea: a real HTTP service with fault knobs (no Django inside).

Run it with ``python -m generation.local_provider --port 8010``; ``make dev`` and the end-to-end
tests start it as its own process. See ``server.py`` for the API and the fault knobs.
"""
