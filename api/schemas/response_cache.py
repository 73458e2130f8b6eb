from marshmallow import Schema, fields, validate


class CacheSavingsSchema(Schema):
    hits = fields.Integer(metadata={"description": "Jobs answered from the response cache."})
    misses = fields.Integer(metadata={"description": "Jobs that looked in it and ran."})
    saved_input_tokens = fields.Integer()
    saved_output_tokens = fields.Integer()
    saved_cost_micros = fields.Integer(
        metadata={"description": "What the hits' answers had cost to produce, in millionths of a US dollar."}
    )


class CachePurgeSchema(Schema):
    tool = fields.String(
        validate=validate.Length(min=1, max=64), metadata={"description": "Only this tool's answers."}
    )
    user = fields.String(
        validate=validate.Length(min=1, max=320),
        metadata={
            "description": "Only this user's answers (an id or an email); shared answers are no one's."
        },
    )


class CachePurgedSchema(Schema):
    purged = fields.Integer(metadata={"description": "Answers removed."})
    tool = fields.String(allow_none=True)
    user = fields.String(allow_none=True)
