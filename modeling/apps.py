from django.apps import AppConfig


class ModelingConfig(AppConfig):
    name = "modeling"
    verbose_name = "Modeling and validation"

    def ready(self) -> None:
        # Celery's autodiscovery imports only `modeling.tasks`; validation's tasks live apart.
        # Receivers of annotate's signals connect on import.
        from modeling import receivers, validation_tasks  # noqa: F401
