"""The WSGI entry point gunicorn serves: `gunicorn wsgi:app`."""

from api import create_app

app = create_app()
