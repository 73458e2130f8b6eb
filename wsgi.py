"""The WSGI entry point gunicorn serves (the Procfile's `web` line names `wsgi:app`)."""

from api import create_app

app = create_app()
