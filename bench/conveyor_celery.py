"""Conveyor's Celery app (workers/celery_app.py) with the bench plan installed (bench/plan.py)."""

from bench import plan

plan.install()

from workers.celery_app import app  # noqa: E402

__all__ = ["app"]
