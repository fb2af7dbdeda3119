"""``gunicorn aiservice.wsgi:app``. Imported in each gunicorn worker after the fork
(never with preload_app), so each worker builds its own pool."""

from aiservice.api.app import create_wsgi_app

app = create_wsgi_app()
