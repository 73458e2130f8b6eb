"""Extension objects, created unbound here and bound in create_app()."""

from flask_jwt_extended import JWTManager

from api.errors import ConveyorApi

api = ConveyorApi()
jwt = JWTManager()
