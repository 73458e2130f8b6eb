import uuid

from api.auth import get_current_user, jwt_login_required, login_required
from api.input_gate import Blueprint
from api.schemas.webhooks import WebhookDeliveryListSchema, WebhookSecretSchema
from api.services import webhooks
from db.session import db_session

blp = Blueprint(
    "webhooks",
    __name__,
    description="Signed webhooks for finished jobs (Standard Webhooks): the delivery log and the secret.",
)


@blp.route("/jobs/<uuid:job_id>/webhook-deliveries", methods=["GET"])
@login_required
@blp.response(200, WebhookDeliveryListSchema)
def deliveries(job_id: uuid.UUID):
    """The job's webhook delivery and every attempt made at it."""
    return {"items": webhooks.deliveries(db_session(), user=get_current_user(), job_id=job_id)}


@blp.route("/users/me/webhook-secret", methods=["GET"])
@jwt_login_required
@blp.response(200, WebhookSecretSchema)
def secret():
    """The secret that signs your webhooks (made on first use)."""
    return {"secret": webhooks.secret(db_session(), user=get_current_user())}


@blp.route("/users/me/webhook-secret/rotate", methods=["POST"])
@jwt_login_required
@blp.response(200, WebhookSecretSchema)
def rotate_secret():
    """Replace the secret; deliveries from now on are signed with the new one."""
    return {"secret": webhooks.rotate_secret(db_session(), user=get_current_user())}
