"""The interface every provider adapter implements, and what it reports."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

from config.payloads import MalformedPayload, loads

if TYPE_CHECKING:
    from datetime import datetime

    from generation.models import Generation


class JobState:
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    # The provider does not know the job (never arrived, or lost in a crash).
    MISSING = "missing"
    # It succeeded but its outputs were removed (Replicate deletes them after an hour).
    GONE = "gone"


@dataclass(frozen=True)
class JobReport:
    """What the provider says about one job, from a callback or a poll."""

    state: str
    progress: int | None = None
    output_urls: tuple[str, ...] = ()
    error: str = ""
    error_code: str = ""


@dataclass(frozen=True)
class CallbackEvent:
    """A verified callback: who sent it, for which job, and what it reports."""

    delivery_id: str
    job_id: str
    event: str
    report: JobReport
    payload: dict = field(default_factory=dict)


class ProviderError(Exception):
    """Base class for provider failures; the message is for operators, not users."""


class DispatchRefused(ProviderError):
    """The provider refused the job for good (bad request, unknown model, no credit)."""


class ProviderTemporaryError(ProviderError):
    """Timeout, connection failure, 429 or 5xx: try again later."""


class InvalidCallback(ProviderError):
    """A signed callback whose body is not what the provider sends."""


class InvalidSignature(InvalidCallback):
    """A callback whose signature or timestamp is wrong: forged, altered or replayed late."""


def load_json(body: bytes | str) -> object:
    """Parse a provider's JSON strictly (``config.payloads.loads``); raise ``InvalidCallback``.

    ``NaN`` and ``Infinity`` are refused, not floats: PostgreSQL's jsonb refuses them too, and
    no number of them is a meaningful progress or price.
    """
    try:
        return loads(body.encode() if isinstance(body, str) else body)
    except MalformedPayload as error:
        raise InvalidCallback(f"malformed JSON: {error}") from None


def clean_progress(value: object) -> int | None:
    """Return a reported progress as a whole percentage; refuse one outside 0..100 or not finite."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidCallback(f"progress is not a number: {value!r:.50}")
    if not 0 <= value <= 100:
        raise InvalidCallback(f"progress {value!r} is outside 0..100")
    return int(value)


class Provider(ABC):
    """Submit, cancel, poll, and verify and parse callbacks for one provider."""

    slug: str
    # Whether a repeated submit with the same key returns the first job (safe to retry).
    idempotent_submit: bool

    def __init__(self, *, transport: httpx.BaseTransport | None = None) -> None:
        self._transport = transport
        self._client: httpx.Client | None = None

    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(
                base_url=self.base_url(),
                headers=self.auth_headers(),
                timeout=httpx.Timeout(15.0, connect=5.0),
                transport=self._transport,
            )
        return self._client

    def request(self, method: str, url: str, **kwargs) -> httpx.Response:
        """Send one request, turning transport failures and 429/5xx into temporary errors."""
        try:
            response = self.client().request(method, url, **kwargs)
        except httpx.HTTPError as error:
            raise ProviderTemporaryError(f"{self.slug} {method} {url}: {error!r}") from error
        if response.status_code == 429 or response.status_code >= 500:
            raise ProviderTemporaryError(
                f"{self.slug} {method} {url}: HTTP {response.status_code} {response.text[:300]}"
            )
        return response

    @abstractmethod
    def base_url(self) -> str: ...

    @abstractmethod
    def auth_headers(self) -> dict[str, str]: ...

    @abstractmethod
    def configured(self) -> tuple[bool, str]:
        """Return whether the provider can be used here, and why not."""

    @abstractmethod
    def submit(self, generation: Generation) -> str:
        """Start the job and return the provider's job id."""

    def find_job(self, generation: Generation, since: datetime) -> str | None:
        """Return the job an uncertain start (attempted at ``since``) created, if any.

        Only providers without an idempotent submit need it; the default knows no way to look.
        """
        return None

    @abstractmethod
    def status(self, job_id: str) -> JobReport:
        """Poll the job."""

    @abstractmethod
    def cancel(self, job_id: str) -> None:
        """Ask the provider to stop the job (best effort)."""

    @abstractmethod
    def verify_callback(self, body: bytes, headers: Mapping[str, str]) -> None:
        """Raise ``InvalidSignature`` unless this provider signed the raw ``body`` just now."""

    @abstractmethod
    def read_callback(
        self, payload: object, headers: Mapping[str, str], query: Mapping[str, str]
    ) -> CallbackEvent | None:
        """Read a verified callback's parsed JSON; None for events to ignore.

        Raise ``InvalidCallback`` when it lacks what settling needs.
        """

    @abstractmethod
    def allowed_hosts(self) -> list[str]:
        """Hosts its output files may be downloaded from."""
