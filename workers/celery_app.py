"""The Celery app every worker, the beat and Flower start from:
`celery -A workers.celery_app worker`."""

import gc
import os
import sys

from celery import Celery, bootsteps
from celery.signals import (
    before_task_publish,
    setup_logging,
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
)

from db.session import dispose_engine, remove_session
from settings import get_settings
from workers import broker, logs, metrics, queues, storage
from workers.providers import clear_provider_cache, get_provider

broker.install()  # kombu's Redis transport, keeping one client per channel
app = Celery("conveyor")
app.config_from_object("celeryconfig")
app.set_default()


@worker_process_init.connect
def _drop_inherited_connections(**_: object) -> None:
    dispose_engine()
    clear_provider_cache()
    storage.clear_cache()
    # Build the provider (and import its SDK) now, not inside the first job's time limit.
    get_provider(get_settings())
    gc.freeze()  # see _freeze_the_start_up_heap


@worker_ready.connect
def _freeze_the_start_up_heap(**_: object) -> None:
    # What start-up imported and built lives as long as the process: keep it out of the
    # cyclic GC's full collections, which otherwise walk all of it each time for nothing
    # (none of it is garbage). Also in each pool process, after its own start-up.
    gc.freeze()


@task_postrun.connect
def _remove_session(**_: object) -> None:
    remove_session()


# ---------------------------------------------------------------- operations


@setup_logging.connect
def _configure_logging(loglevel: int | str | None = None, **_: object) -> None:
    # Connected, so Celery leaves logging alone: workers and beat log as the web does.
    logs.configure(get_settings(), level=loglevel)
    from tasks.generation import RUN  # a job logs its own start and outcome

    logs.quiet_celery_task_lines((RUN,))


@before_task_publish.connect
def _carry_request_id(headers: dict | None = None, **_: object) -> None:
    # The request (or the job a worker is on) that caused this message follows it.
    request_id = logs.current_request_id()
    if headers is not None and request_id and not headers.get(logs.TASK_HEADER):
        headers[logs.TASK_HEADER] = request_id


@task_prerun.connect
def _bind_log_context(task_id: str | None = None, task=None, **_: object) -> None:
    logs.clear()
    request_id = getattr(task.request, logs.TASK_HEADER, None) if task is not None else None
    logs.bind(request_id=request_id, task=getattr(task, "name", None), task_id=task_id)


@task_postrun.connect
def _clear_log_context(**_: object) -> None:
    logs.clear()


@worker_init.connect
def _cooperative_postgres(**_: object) -> None:
    # Under the gevent pool (`-P gevent`, which monkey-patches before this runs), psycopg2
    # must yield while it waits on Postgres, or one query stalls every job of the process.
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("socket"):
        from psycogreen.gevent import patch_psycopg

        patch_psycopg()


@worker_init.connect
def _build_the_provider(**_: object) -> None:
    # Before the pool starts, in the worker's main process: a gevent (or solo) pool runs
    # its jobs here, and would otherwise import the SDK inside the first job and leave it
    # out of the frozen start-up heap. Prefork processes fork with the SDK imported and
    # build their own client (_drop_inherited_connections).
    get_provider(get_settings())


@worker_init.connect
def _fresh_metrics_dir(**_: object) -> None:
    # In the worker's main process, before the pool forks: this run's counters start at zero.
    metrics.reset_multiprocess_dir()


@worker_ready.connect
def _serve_metrics(**_: object) -> None:
    port = get_settings().metrics_port
    if port:
        metrics.serve(port)


@worker_process_shutdown.connect
def _metrics_process_exited(pid: int | None = None, **_: object) -> None:
    metrics.process_exited(pid or os.getpid())


class Presence(bootsteps.StartStopStep):
    """While the consumer consumes, a heartbeat in Redis names this worker's queues
    (read by /ready and GET /admin/queues). A consumer restart (broker lost) stops
    and restarts it; a clean shutdown signs off at once."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent, **kwargs) -> None:
        super().__init__(parent, **kwargs)
        self.heartbeat: queues.Heartbeat | None = None

    def start(self, consumer) -> None:
        settings = get_settings()
        self.heartbeat = queues.Heartbeat(
            settings.redis_url,
            hostname=consumer.hostname,
            queues=lambda: _consumed(consumer),
            interval=settings.worker_heartbeat_interval,
            concurrency=consumer.controller.concurrency or 1,  # the processes it runs jobs in
        ).start()

    def stop(self, consumer) -> None:
        if self.heartbeat is not None:
            self.heartbeat.stop()
            self.heartbeat = None

    def shutdown(self, consumer) -> None:
        self.stop(consumer)


def _consumed(consumer) -> list[str]:
    task_consumer = getattr(consumer, "task_consumer", None)
    if task_consumer is not None:
        return [queue.name for queue in task_consumer.queues]
    return list(consumer.app.amqp.queues.consume_from or consumer.app.amqp.queues)


app.steps["consumer"].add(Presence)
