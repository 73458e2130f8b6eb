"""gunicorn hooks for the Procfile's `web` line (flags stay in the Procfile).

The line starts gunicorn through `python -m gevent.monkey --module gunicorn`: gevent's own
launcher patches the standard library before gunicorn (or anything it loads) imports
`ssl`. Patched later, in the worker, the sockets behind TLS calls (Stripe, S3) may stay
blocking or unpatched, and gevent warns so at every boot (MonkeyPatchWarning).
"""

import gc

from gunicorn.glogging import Logger


class ConveyorLogger(Logger):
    """gunicorn's own lines (start-up, worker boots and deaths) in the app's log format.
    Access lines come from the app itself (api/http.py), with the request id."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        from settings import get_settings
        from workers import logs

        for handler in self.error_log.handlers + self.access_log.handlers:
            logs.decorate(handler, get_settings())


logger_class = ConveyorLogger


def on_starting(server) -> None:
    # Before any worker is forked: metrics files of an earlier run must not add to this one's.
    from workers import metrics

    metrics.reset_multiprocess_dir()


def post_worker_init(worker) -> None:
    # Under gevent, psycopg2 must yield while it waits on Postgres, or one slow query
    # stalls every client of this worker (event streams and long-polls included).
    if type(worker).__name__.startswith("Gevent"):
        from psycogreen.gevent import patch_psycopg

        patch_psycopg()
    # The app is loaded: what it imported and built lives as long as the worker. Keep it
    # out of the cyclic GC's full collections, which otherwise walk all of it each time
    # for nothing (none of it is garbage).
    gc.freeze()


def child_exit(server, worker) -> None:
    from workers import metrics

    metrics.process_exited(worker.pid)
