from flask_jwt_extended import get_jwt, jwt_required

from api.auth import (
    current_settings,
    end_session,
    get_current_user,
    issue_tokens,
    jwt_login_required,
    rotate_tokens,
)
from api.input_gate import Blueprint
from api.openapi import TOKEN_ONLY, documented
from api.request_limits import forgot_password_limits, login_limits, register_limits
from api.schemas.auth import (
    EmailVerifiedSchema,
    ForgotPasswordSchema,
    LoginSchema,
    LogoutSchema,
    NoticeSchema,
    RefreshedSchema,
    RegisterSchema,
    ResetPasswordSchema,
    SessionSchema,
)
from api.services import accounts
from db.session import db_session

blp = Blueprint("auth", __name__, description="Accounts and tokens.")


@blp.route("/register", methods=["POST"])
@documented(statuses={409})
@register_limits  # outside the schema, so that malformed attempts count too
@blp.arguments(RegisterSchema())
@blp.response(201, SessionSchema)
def register(data):
    """Create an account (a verification email is sent); returns tokens as login does."""
    user = accounts.register(db_session(), settings=current_settings(), **data)
    return issue_tokens(user)


@blp.route("/login", methods=["POST"])
@documented(statuses={401})
@login_limits  # outside the schema, so that malformed attempts count too
@blp.arguments(LoginSchema())
@blp.response(200, SessionSchema)
def login(data):
    """Exchange email and password for an access and a refresh token."""
    user = accounts.authenticate(db_session(), **data)
    return issue_tokens(user)


@blp.route("/refresh", methods=["POST"])
@documented(security=TOKEN_ONLY, statuses={401})
@jwt_required(refresh=True)
@blp.response(200, RefreshedSchema)
def refresh():
    """Send the refresh token as the Bearer token; get a new access AND refresh token.

    Each refresh token works once. Sending one a second time ends its session (every
    token descended from the same login) in case it was stolen."""
    return rotate_tokens(get_jwt(), get_current_user())


@blp.route("/logout", methods=["POST"])
@documented(security=TOKEN_ONLY, statuses={401})
@jwt_required(verify_type=False)
@blp.arguments(LogoutSchema())
@blp.response(204)
def logout(data):
    """End the session: revoke the Bearer token, its session, and that of the refresh token given."""
    end_session(get_jwt(), refresh_token=data.get("refresh_token"))


@blp.route("/forgot-password", methods=["POST"])
@forgot_password_limits
@blp.arguments(ForgotPasswordSchema())
@blp.response(202, NoticeSchema)
def forgot_password(data):
    """Email a password reset link; the answer is the same whether the account exists or not."""
    accounts.forgot_password(email=data["email"])
    return {"message": "If an account exists for this address, a link to reset its password is on its way."}


@blp.route("/reset-password", methods=["POST"])
@documented(statuses={400, 410})
@blp.arguments(ResetPasswordSchema())
@blp.response(204)
def reset_password(data):
    """Set a new password with the reset email's token; every session ends, every API key is revoked."""
    accounts.reset_password(db_session(), settings=current_settings(), **data)


@blp.route("/verify-email/<string:token>", methods=["GET"])
@documented(statuses={400, 410})
@blp.response(200, EmailVerifiedSchema)
def verify_email(token: str):
    """The link in the verification email: marks the address verified."""
    changed = accounts.verify_email(db_session(), token=token, settings=current_settings())
    return {"email_verified": True, "already_verified": not changed}


@blp.route("/verify-email", methods=["POST"])
@documented(statuses={409})
@jwt_login_required
@blp.response(202, NoticeSchema)
def resend_verification():
    """Send the verification email again (at most once every ten minutes)."""
    accounts.resend_verification(db_session(), user=get_current_user(), settings=current_settings())
    return {"message": "A verification link is on its way."}
