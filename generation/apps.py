from django.apps import AppConfig


class GenerationConfig(AppConfig):
    """Catalogue, the generation state machine, providers and their tasks."""

    name = "generation"
    verbose_name = "Generation"

    def ready(self) -> None:
        from generation import receivers
        from ledger import api as ledger

        ledger.credits_added.connect(
            receivers.collect_unpaid_after_credits, dispatch_uid="generation.collect_unpaid"
        )
