"""gunicorn hooks for the web baseline: psycopg2 yields under gevent, as in gunicorn.conf.py."""


def post_worker_init(worker) -> None:
    if type(worker).__name__.startswith("Gevent"):
        from psycogreen.gevent import patch_psycopg

        patch_psycopg()
