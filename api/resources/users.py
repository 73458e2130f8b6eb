from api.auth import current_settings, get_current_user, jwt_login_required, login_required
from api.input_gate import Blueprint
from api.schemas.users import DeletionSchema, UserSchema, UserUpdateSchema
from api.services import accounts
from db.session import db_session

blp = Blueprint("users", __name__, description="The caller's account.")


@blp.route("/me", methods=["GET"])
@login_required
@blp.response(200, UserSchema)
def me():
    """The account the token (or API key) belongs to."""
    return get_current_user()


@blp.route("/me", methods=["PATCH"])
@jwt_login_required
@blp.arguments(UserUpdateSchema())
@blp.response(200, UserSchema)
def update_me(data):
    """Change your name or the profile fields tools use to personalise their prompts."""
    return accounts.update(db_session(), user=get_current_user(), **data)


@blp.route("/me", methods=["DELETE"])
@jwt_login_required
@blp.response(202, DeletionSchema)
def delete_me():
    """Close the account: you are logged out everywhere at once; your data is deleted shortly."""
    accounts.close(db_session(), user=get_current_user(), settings=current_settings())
    return {"status": "deleting", "message": "The account is closed; its data is being deleted."}
