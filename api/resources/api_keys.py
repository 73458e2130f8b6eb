import uuid

from api.auth import current_settings, get_current_user, jwt_login_required
from api.input_gate import Blueprint
from api.openapi import documented
from api.schemas.api_keys import ApiKeyCreateSchema, ApiKeyListSchema, NewApiKeySchema
from api.services import api_keys
from db.session import db_session

blp = Blueprint(
    "api_keys",
    __name__,
    description="Keys for programs (`X-API-Key` on the job API); managed with an access token only.",
)


@blp.route("", methods=["POST"])
@documented(statuses={409})
@jwt_login_required
@blp.arguments(ApiKeyCreateSchema())
@blp.response(201, NewApiKeySchema)
def create(data):
    """Create a key; its secret is in this response only."""
    return api_keys.create(
        db_session(), user=get_current_user(), name=data["name"], settings=current_settings()
    )


@blp.route("", methods=["GET"])
@jwt_login_required
@blp.response(200, ApiKeyListSchema)
def list_keys():
    """Your keys, newest first, revoked ones included (never their secrets)."""
    return {"items": api_keys.list_keys(db_session(), user=get_current_user())}


@blp.route("/<uuid:key_id>", methods=["DELETE"])
@jwt_login_required
@blp.response(204)
def revoke(key_id: uuid.UUID):
    """Revoke a key: it stops working at once."""
    api_keys.revoke(db_session(), user=get_current_user(), key_id=key_id)
