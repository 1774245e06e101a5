from django.apps import AppConfig


class GenerationConfig(AppConfig):
    """Catalogue, the generation state machine, providers and their tasks."""

    name = "generation"
    verbose_name = "Generation"
