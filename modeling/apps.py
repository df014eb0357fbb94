from django.apps import AppConfig


class ModelingConfig(AppConfig):
    name = "modeling"
    verbose_name = "Modeling and validation"

    def ready(self) -> None:
        # Receivers of annotate's signals connect on import.
        from modeling import receivers  # noqa: F401
