"""The API's docs page: flask-smorest's Swagger UI page at /api/v1/docs, with Swagger UI's
files served by the API itself from the pinned flask-swagger-ui package (which ships them,
its version being Swagger UI's). The page works with no internet, and its CSP
(api/http.py) names no host but this one."""

from __future__ import annotations

from importlib.resources import files

from flask import Flask, abort, send_from_directory

# What flask-smorest's page loads (a test checks each answers, so a page that wants more fails it).
ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js")
# Swagger UI asks validator.swagger.io for a badge unless told not to.
SWAGGER_UI_CONFIG = {"validatorUrl": None}


def docs_config(prefix: str) -> dict[str, object]:
    """flask-smorest's settings for the docs page, its assets under `prefix`."""
    return {
        "OPENAPI_SWAGGER_UI_PATH": "/docs",
        "OPENAPI_SWAGGER_UI_URL": f"{prefix}/docs/swagger-ui/",
        "OPENAPI_SWAGGER_UI_CONFIG": SWAGGER_UI_CONFIG,
    }


def init_docs(app: Flask, *, prefix: str) -> None:
    folder = str(files("flask_swagger_ui") / "dist")

    def swagger_ui_asset(name: str):
        if name not in ASSETS:
            abort(404)
        return send_from_directory(folder, name)

    app.add_url_rule(f"{prefix}/docs/swagger-ui/<name>", "swagger_ui_asset", swagger_ui_asset)
