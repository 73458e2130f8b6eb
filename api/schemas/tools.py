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
    cache_ttl = fields.Integer(
        allow_none=True,
        metadata={
            "description": "Seconds an answer may be served again from the response cache; null: never."
        },
    )
    personalised = fields.Boolean(
        metadata={
            "description": "Its prompt carries your profile, so cached answers are yours alone; "
            "false: no profile is sent and identical requests share an answer across users."
        }
    )


class ToolListSchema(Schema):
    items = fields.List(fields.Nested(ToolSchema))
