"""The words each ledger function answers with, and the rows ``ledger.api`` returns.

Each enum is spelled exactly like the status column its SQL function returns, so a member
compares equal to the word the database sent. ``ledger.api`` converts every answer on the way
out: a word the contract does not list raises instead of slipping through as a bare string.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID


class GrantOutcome(StrEnum):
    """What ``ledger_grant`` answers."""

    GRANTED = "granted"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"


class HoldOutcome(StrEnum):
    """What ``ledger_hold`` answers."""

    HELD = "held"
    INSUFFICIENT = "insufficient"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"


class CaptureOutcome(StrEnum):
    """What ``ledger_capture`` answers."""

    CAPTURED = "captured"
    DUPLICATE = "duplicate"
    LATE_CHARGED = "late_charged"
    UNPAID = "unpaid"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"


class ReleaseOutcome(StrEnum):
    """What ``ledger_release`` answers."""

    RELEASED = "released"
    DUPLICATE = "duplicate"
    ALREADY_CAPTURED = "already_captured"
    NOT_FOUND = "not_found"


class ExtendOutcome(StrEnum):
    """What ``ledger_extend`` answers."""

    EXTENDED = "extended"
    NOT_PENDING = "not_pending"
    NOT_FOUND = "not_found"


class AdjustOutcome(StrEnum):
    """What ``ledger_adjust`` answers."""

    ADJUSTED = "adjusted"
    INSUFFICIENT = "insufficient"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"


class ClawbackOutcome(StrEnum):
    """What ``ledger_clawback`` answers."""

    CLAWED_BACK = "clawed_back"
    PARTIAL = "partial"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"


@dataclass(frozen=True)
class GrantResult:
    status: GrantOutcome
    entry_id: int | None
    available: int


@dataclass(frozen=True)
class HoldResult:
    status: HoldOutcome
    hold_id: UUID | None
    available: int


@dataclass(frozen=True)
class CaptureResult:
    status: CaptureOutcome
    captured: int
    available: int


@dataclass(frozen=True)
class ReleaseResult:
    status: ReleaseOutcome
    released: int
    available: int


@dataclass(frozen=True)
class ExtendResult:
    status: ExtendOutcome
    expires_at: datetime | None


@dataclass(frozen=True)
class AdjustResult:
    status: AdjustOutcome
    entry_id: int | None
    available: int


@dataclass(frozen=True)
class ClawbackResult:
    status: ClawbackOutcome
    taken: int
    shortfall: int


@dataclass(frozen=True)
class Violation:
    invariant: str
    detail: str
