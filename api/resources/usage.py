from api.auth import get_current_user, login_required
from api.input_gate import Blueprint
from api.schemas.usage import UsageArgsSchema, UsageReportSchema
from api.services import usage
from db.session import db_session

blp = Blueprint("usage", __name__, description="Tokens and cost used, and the quota left.")


@blp.route("", methods=["GET"])
@login_required
@blp.arguments(UsageArgsSchema(), location="query")
@blp.response(200, UsageReportSchema)
def get_usage(args):
    """Billed usage by day, tool or model over a range of days, with this month's quota."""
    return usage.report(
        db_session(), user=get_current_user(), start=args["from_"], end=args["to"], group_by=args["group_by"]
    )
