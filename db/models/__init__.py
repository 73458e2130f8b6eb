"""All models, imported here so that metadata (and Alembic) sees every table."""

from db.models.job import Job
from db.models.user import User

__all__ = ["Job", "User"]
