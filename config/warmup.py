"""Load what a web process would otherwise load while serving its first requests.

gunicorn --preload imports config.wsgi once, before it forks the workers, so what is loaded
here is shared by all of them and no researcher waits for it on a process's first page: every
view module (and what it imports), the URL resolver's reverse tables, the compiled templates
(the cached template loader keeps them for the life of the process), the template tag
libraries and the locale's date formats.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

from django.conf import settings
from django.template import engines
from django.template.backends.django import DjangoTemplates
from django.template.loader import get_template
from django.urls import URLResolver, get_resolver
from django.utils import formats


def _reverse_tables(resolver: URLResolver) -> None:
    resolver.reverse_dict  # noqa: B018 - the attribute access builds the table
    for _prefix, namespaced in resolver.namespace_dict.values():
        _reverse_tables(namespaced)


def _template_names() -> list[str]:
    """The project's own templates (templates/ and each app's templates/ folder)."""
    folders = [Path(d) for t in settings.TEMPLATES for d in cast(list[str], t.get("DIRS", []))]
    folders += [Path(app).parent / "templates" for app in _project_app_files()]
    return sorted(
        {str(path.relative_to(folder)) for folder in folders for path in folder.rglob("*.html")}
    )


def _project_app_files() -> list[str]:
    from django.apps import apps

    base = Path(settings.BASE_DIR)
    return [
        str(Path(app.path) / "apps.py")
        for app in apps.get_app_configs()
        if Path(app.path).is_relative_to(base)
    ]


def web_process_warm() -> None:
    """Import the views, build the reverse tables, compile the templates, load the formats."""
    resolver = get_resolver()
    resolver.url_patterns  # noqa: B018 - imports every view (torch included: about 3 s)
    _reverse_tables(resolver)
    for backend in engines.all():
        if isinstance(backend, DjangoTemplates):
            backend.engine.template_context_processors  # noqa: B018 - imports them
            backend.engine.template_builtins  # noqa: B018
    for name in _template_names():
        get_template(name)
    for name in ("DATE_FORMAT", "DATETIME_FORMAT", "TIME_FORMAT", "DATE_INPUT_FORMATS"):
        formats.get_format(name)
