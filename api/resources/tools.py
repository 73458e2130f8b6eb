from api.input_gate import Blueprint
from api.schemas.tools import ToolListSchema, ToolSchema
from api.services.errors import NotFound
from workers.tools import all_tools, get_tool

blp = Blueprint("tools", __name__, description="The catalogue of AI tools a job can run.")


@blp.route("", methods=["GET"])
@blp.response(200, ToolListSchema)
def list_tools():
    """Every tool, with the JSON Schema of its input."""
    return {"items": [tool.describe() for tool in all_tools()]}


@blp.route("/<string:name>", methods=["GET"])
@blp.response(200, ToolSchema)
def get_one(name: str):
    """One tool, with the JSON Schema of its input."""
    tool = get_tool(name)
    if tool is None:
        raise NotFound(f"No tool named {name!r}; GET /api/v1/tools lists them.")
    return tool.describe()
