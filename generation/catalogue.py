"""The model catalogue: what users can generate, with which parameters, at what price.

Changing a price or adding a model is one edit to ``CATALOGUE`` below (docs/make-it-yours.md).
Prices are integer credits computed from the chosen parameters; the live estimate on the generate
page and the cost stored on each generation both come from ``price()``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from generation.exceptions import InvalidRequest

KINDS = ("image", "animation", "video")
PROMPT_MIN, PROMPT_MAX = 3, 1000


@dataclass(frozen=True)
class Parameter:
    """One user-chosen parameter with its allowed values (the first is the default)."""

    name: str
    label: str
    choices: tuple[str, ...]
    help: str = ""

    @property
    def default(self) -> str:
        return self.choices[0]


@dataclass(frozen=True)
class ModelSpec:
    """A generative model as users see it, and how to run and price it."""

    key: str
    name: str
    kind: str
    provider: str
    provider_model: str
    description: str
    parameters: tuple[Parameter, ...]
    pricing: Callable[[Mapping[str, str]], int]
    expected_seconds: Callable[[Mapping[str, str]], float]
    pricing_note: str = ""
    # The longest a job may run from submission: signs of life extend its hold up to here, and
    # no further, so a provider that keeps saying "running" cannot hold credits forever.
    max_run_seconds: int = 15 * 60
    # Replicate: an official model runs its latest release and leaves this empty; a community
    # model must be pinned to one version (Replicate runs community models only by version).
    provider_version: str = ""
    extra: Mapping[str, object] = field(default_factory=dict)

    def parameter(self, name: str) -> Parameter:
        return next(p for p in self.parameters if p.name == name)


RATIOS = Parameter("ratio", "Aspect ratio", ("1:1", "16:9", "9:16", "4:3"))
IMAGE_FORMATS = Parameter("output_format", "Format", ("png", "webp"))
IMAGE_COUNT = Parameter("outputs", "Images", ("1", "2", "4"), "Each image is priced separately.")

CATALOGUE: dict[str, ModelSpec] = {
    spec.key: spec
    for spec in (
        ModelSpec(
            key="flux-schnell",
            name="Flux Schnell",
            kind="image",
            provider="babysea",
            provider_model="bfl/flux-schnell",
            description="Fast text-to-image for drafts and thumbnails.",
            parameters=(RATIOS, IMAGE_FORMATS, IMAGE_COUNT),
            pricing=lambda p: 5 * int(p["outputs"]),
            pricing_note="5 credits per image",
            expected_seconds=lambda p: 4 + 2 * int(p["outputs"]),
        ),
        ModelSpec(
            key="flux-pro",
            name="Flux Pro",
            kind="image",
            provider="babysea",
            provider_model="bfl/flux-1.1-pro",
            description="Sharper detail and better prompt following.",
            parameters=(RATIOS, IMAGE_FORMATS, IMAGE_COUNT),
            pricing=lambda p: 12 * int(p["outputs"]),
            pricing_note="12 credits per image",
            expected_seconds=lambda p: 8 + 4 * int(p["outputs"]),
        ),
        ModelSpec(
            key="loop-animation",
            name="Loop animation",
            kind="animation",
            provider="babysea",
            provider_model="babysea/loop-animation",
            description="A short looping animation (animated WebP).",
            parameters=(
                Parameter("ratio", "Aspect ratio", ("1:1", "16:9", "9:16")),
                Parameter("duration", "Seconds", ("2", "4")),
            ),
            pricing=lambda p: 10 * int(p["duration"]),
            pricing_note="10 credits per second",
            expected_seconds=lambda p: 6 + 3 * int(p["duration"]),
        ),
        ModelSpec(
            key="clip-video",
            name="Short clip",
            kind="video",
            provider="babysea",
            provider_model="babysea/short-clip",
            description="A short video clip; resolution and length set the price.",
            parameters=(
                Parameter("ratio", "Aspect ratio", ("16:9", "9:16", "1:1")),
                Parameter("duration", "Seconds", ("3", "5")),
                Parameter("resolution", "Resolution", ("480p", "720p")),
            ),
            pricing=lambda p: int(p["duration"]) * (15 if p["resolution"] == "480p" else 25),
            pricing_note="15 credits per second at 480p, 25 at 720p",
            expected_seconds=lambda p: 10 + 4 * int(p["duration"]),
            max_run_seconds=30 * 60,
        ),
        ModelSpec(
            key="sdxl-replicate",
            name="SDXL (Replicate)",
            kind="image",
            provider="replicate",
            provider_model="stability-ai/sdxl",
            # A community model: pinned, so a new upload by its owner changes nothing here.
            provider_version="39ed52f2a78e934b3ba6e2a89f5b1c712de7dfea535525255b1aa35c5565e08b",
            description="Stable Diffusion XL run on Replicate.",
            parameters=(RATIOS,),
            pricing=lambda p: 8,
            pricing_note="8 credits per image",
            expected_seconds=lambda p: 15,
        ),
    )
}


def get_model(key: str) -> ModelSpec:
    """Return the catalogue entry or refuse an unknown model."""
    try:
        return CATALOGUE[key]
    except KeyError:
        raise InvalidRequest("Choose a model from the list.") from None


def clean_parameters(spec: ModelSpec, raw: Mapping[str, object]) -> dict[str, str]:
    """Return the model's parameters with defaults filled in; refuse values not allowed."""
    cleaned = {}
    for parameter in spec.parameters:
        value = raw.get(parameter.name)
        value = parameter.default if value in (None, "") else str(value)
        if value not in parameter.choices:
            raise InvalidRequest(
                f"{parameter.label} must be one of {', '.join(parameter.choices)}."
            )
        cleaned[parameter.name] = value
    return cleaned


def clean_prompt(prompt: object) -> str:
    """Return the trimmed prompt, refusing one that is too short or too long."""
    text = str(prompt or "").strip()
    if not PROMPT_MIN <= len(text) <= PROMPT_MAX:
        raise InvalidRequest(f"The prompt must be {PROMPT_MIN} to {PROMPT_MAX} characters.")
    # PostgreSQL text cannot hold NUL, and no provider wants control characters.
    if any(char < " " and char not in "\n\r\t" for char in text):
        raise InvalidRequest("The prompt cannot contain control characters.")
    return text


def price(model_key: str, raw: Mapping[str, object]) -> int:
    """Return the cost in credits of one generation with these parameters."""
    spec = get_model(model_key)
    cost = spec.pricing(clean_parameters(spec, raw))
    if not isinstance(cost, int) or cost <= 0:
        raise ValueError(f"pricing of {model_key} must return a positive int, not {cost!r}")
    return cost


def expected_seconds(model_key: str, raw: Mapping[str, object]) -> float:
    """Return how long this generation is expected to take at the provider."""
    spec = get_model(model_key)
    return float(spec.expected_seconds(clean_parameters(spec, raw)))
