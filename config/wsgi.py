import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

from config.warmup import web_process_warm  # noqa: E402 - needs the apps loaded above

# Load now what the first requests of each web process would otherwise load; with gunicorn
# --preload, once for all of them.
web_process_warm()
