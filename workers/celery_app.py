"""The Celery app every worker, the beat and Flower start from:
`celery -A workers.celery_app worker`."""

from celery import Celery
from celery.signals import task_postrun, worker_process_init

from db.session import dispose_engine, remove_session
from workers.providers import clear_provider_cache

app = Celery("conveyor")
app.config_from_object("celeryconfig")
app.set_default()


@worker_process_init.connect
def _drop_inherited_connections(**_: object) -> None:
    dispose_engine()
    clear_provider_cache()


@task_postrun.connect
def _remove_session(**_: object) -> None:
    remove_session()
