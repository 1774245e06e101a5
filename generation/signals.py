"""Signals generation sends; apps above it listen instead of generation importing them."""

from django.dispatch import Signal

# Sent inside the transaction of the transition that moved ``generation`` to succeeded, failed,
# expired or unpaid (``generation`` is the row as it now stands). A receiver that writes in that
# transaction commits or rolls back with the transition, so it sees each transition once.
generation_finished = Signal()
