"""Submit, start, dispatch, settle, cancel, reconcile and re-drive generations.

One module per step of a generation's life: ``submission``, ``dispatch``, ``holds`` (the ledger
work a transition claimed), ``settlement``, ``callbacks``, ``cancellation`` and ``reconcile``.
Ledger calls run outside any transaction (``ledger.api`` refuses to run inside one that holds
locks); state changes go through ``generation.transitions``. Every function is safe to run twice
or concurrently: the guarded transitions decide who acts, and the ledger keys holds by
``gen:<id>``. Tasks are queued by name (``queueing``), so these modules never import
``generation.tasks``, which imports them.
"""
