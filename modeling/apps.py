from django.apps import AppConfig


class ModelingConfig(AppConfig):
    name = "modeling"
    verbose_name = "Modeling and validation"

    def ready(self) -> None:
        # Celery's autodiscovery imports only `modeling.tasks`; validation's tasks live apart.
        from modeling import validation_tasks  # noqa: F401
