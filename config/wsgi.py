import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()
# Import every view now (and what they import, torch included: about 3 s) rather than in the
# first request each web process serves; with gunicorn --preload, once for all of them.
get_resolver().url_patterns  # noqa: B018 - the attribute access does the import
