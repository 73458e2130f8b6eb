from flask import Response, request

from api.auth import current_settings
from api.input_gate import Blueprint
from api.services import metrics

blp = Blueprint("metrics", __name__, description="Prometheus metrics (for the operators' scraper).")


@blp.route("/metrics", methods=["GET"])
@blp.doc(responses={200: {"description": "Prometheus text format.", "content": {"text/plain": {}}}})
def scrape():
    """The web processes' metrics and queue gauges, in Prometheus' text format."""
    body, content_type = metrics.scrape(accept=request.headers.get("Accept"), settings=current_settings())
    return Response(body, content_type=content_type)
