"""gunicorn hooks for the Procfile's `web` line (flags stay in the Procfile)."""


def post_worker_init(worker) -> None:
    # Under gevent, psycopg2 must yield while it waits on Postgres, or one slow query
    # stalls every client of this worker (event streams and long-polls included).
    if type(worker).__name__.startswith("Gevent"):
        from psycogreen.gevent import patch_psycopg

        patch_psycopg()
