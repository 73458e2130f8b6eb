"""Extension objects, created unbound here and bound in create_app()."""

from flask_jwt_extended import JWTManager
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from api.errors import ConveyorApi

api = ConveyorApi()
jwt = JWTManager()
# Storage (Redis) and strategy are configured in api.ratelimits.init_limits.
limiter = Limiter(key_func=get_remote_address)
