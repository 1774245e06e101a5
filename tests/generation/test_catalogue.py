"""The catalogue prices from parameters and refuses values it does not list."""

import pytest

from generation import catalogue
from generation.exceptions import InvalidRequest


def test_price_follows_the_parameters():
    """Per-image and per-second prices multiply; resolution changes the video rate."""
    assert catalogue.price("flux-schnell", {}) == 5
    assert catalogue.price("flux-schnell", {"outputs": "4"}) == 20
    assert catalogue.price("loop-animation", {"duration": "4"}) == 40
    assert catalogue.price("clip-video", {"duration": "5", "resolution": "720p"}) == 125


def test_every_model_has_a_positive_price_and_duration_for_every_default():
    """Each entry prices and times its defaults; kinds are from the documented set."""
    for spec in catalogue.CATALOGUE.values():
        assert spec.kind in catalogue.KINDS
        assert catalogue.price(spec.key, {}) > 0
        assert catalogue.expected_seconds(spec.key, {}) > 0


@pytest.mark.parametrize(
    ("model", "params"),
    [("flux-schnell", {"outputs": "3"}), ("flux-schnell", {"ratio": "2:1"}), ("nope", {})],
)
def test_values_not_listed_are_refused(model, params):
    """Unknown models and values outside the allowed list raise a message for the user."""
    with pytest.raises(InvalidRequest):
        catalogue.price(model, params)


def test_prompt_length_is_checked():
    """Prompts are trimmed and must be 3 to 1000 characters."""
    assert catalogue.clean_prompt("  a cat  ") == "a cat"
    with pytest.raises(InvalidRequest):
        catalogue.clean_prompt("hi")
