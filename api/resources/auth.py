from flask_jwt_extended import get_jwt, jwt_required
from flask_smorest import Blueprint

from api.auth import BEARER, get_current_user, issue_tokens, revoke_encoded, revoke_token
from api.schemas.auth import AccessTokenSchema, LoginSchema, LogoutSchema, RegisterSchema, SessionSchema
from api.services import accounts
from db.session import db_session

blp = Blueprint("auth", __name__, description="Accounts and tokens.")


@blp.route("/register", methods=["POST"])
@blp.arguments(RegisterSchema)
@blp.response(201, SessionSchema)
def register(data):
    """Create an account; returns tokens as login does."""
    user = accounts.register(db_session(), **data)
    return issue_tokens(user)


@blp.route("/login", methods=["POST"])
@blp.arguments(LoginSchema)
@blp.response(200, SessionSchema)
def login(data):
    """Exchange email and password for an access and a refresh token."""
    user = accounts.authenticate(db_session(), **data)
    return issue_tokens(user)


@blp.route("/refresh", methods=["POST"])
@blp.doc(security=BEARER)
@jwt_required(refresh=True)
@blp.response(200, AccessTokenSchema)
def refresh():
    """Send the refresh token as the Bearer token; get a new access token."""
    return issue_tokens(get_current_user(), refresh=False)


@blp.route("/logout", methods=["POST"])
@blp.doc(security=BEARER)
@jwt_required(verify_type=False)
@blp.arguments(LogoutSchema)
@blp.response(204)
def logout(data):
    """Revoke the Bearer token, and the refresh token given in the body."""
    revoke_token(get_jwt())
    if data.get("refresh_token"):
        revoke_encoded(data["refresh_token"], user_id=get_current_user().id)
