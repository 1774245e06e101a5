"""Errors raised by ``ledger.api``; statuses that are normal outcomes are results, not errors."""


class LedgerError(Exception):
    """The ledger could not carry out a call (refused context, retries exhausted)."""


class LedgerInputError(LedgerError, ValueError):
    """The arguments are invalid; nothing was written."""
