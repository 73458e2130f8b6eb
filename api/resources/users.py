from flask_smorest import Blueprint

from api.auth import BEARER, get_current_user, login_required
from api.schemas.users import UserSchema

blp = Blueprint("users", __name__, description="The caller's account.")


@blp.route("/me", methods=["GET"])
@blp.doc(security=BEARER)
@login_required
@blp.response(200, UserSchema)
def me():
    """The account the token belongs to."""
    return get_current_user()
