"""Conveyor's WSGI app (wsgi.py) with the bench plan installed (bench/plan.py)."""

from bench import plan

plan.install()

from wsgi import app  # noqa: E402 - after the plan, which create_app's limits read

__all__ = ["app"]
