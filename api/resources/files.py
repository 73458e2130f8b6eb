from flask import Response

from api.auth import current_settings
from api.input_gate import Blueprint
from api.services import files

blp = Blueprint(
    "files", __name__, description="Downloads of stored files by signed, expiring link (local-disk storage)."
)


@blp.route("/<string:token>", methods=["GET"])
@blp.doc(
    responses={
        200: {"description": "The file.", "content": {"application/octet-stream": {}}},
        403: {"description": "The link is not valid."},
        404: {"description": "The file no longer exists."},
        410: {"description": "The link has expired."},
    }
)
def download(token: str):
    """Download a file by a link the API handed out; no token needed, it expires."""
    found = files.open_download(token, settings=current_settings())
    return Response(
        found.data,
        mimetype=found.content_type,
        headers={
            "Content-Disposition": f'attachment; filename="{found.filename}"',
            "Cache-Control": "private, no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )
