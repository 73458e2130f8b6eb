from marshmallow import Schema, fields


class ToolSchema(Schema):
    name = fields.String()
    title = fields.String()
    description = fields.String()
    output = fields.String(metadata={"description": "'text' (output is {text}) or 'json'."})
    input_schema = fields.Dict(metadata={"description": "JSON Schema of the job's `input`."})
    output_schema = fields.Dict(
        allow_none=True, metadata={"description": "JSON Schema of a json tool's output."}
    )
    plans = fields.List(fields.String())
    conversation = fields.Boolean()
    interactive = fields.Boolean(
        metadata={
            "description": "Someone watches its answer stream. A plan's cheaper background lane "
            "(flex) is the default only for tools that are not."
        }
    )
    max_output_tokens = fields.Integer()


class ToolListSchema(Schema):
    items = fields.List(fields.Nested(ToolSchema))
