from marshmallow import Schema, fields

from api.input_gate import Blueprint
from api.services import health

blp = Blueprint("health", __name__, description="Liveness and readiness for load balancers.")


class HealthSchema(Schema):
    status = fields.String()
    checks = fields.Dict(keys=fields.String(), values=fields.String())


@blp.route("/health", methods=["GET"])
@blp.response(200, HealthSchema)
def alive():
    """The process answers."""
    return {"status": "ok", "checks": {}}


@blp.route("/ready", methods=["GET"])
@blp.response(200, HealthSchema)
@blp.alt_response(503, schema=HealthSchema)
def ready():
    """Whether the database and Redis answer and every queue has a live worker; 503 names
    the part that is not ready and why."""
    checks = health.check_dependencies()
    ok = all(value == "ok" for value in checks.values())
    return {"status": "ok" if ok else "unavailable", "checks": checks}, (200 if ok else 503)
