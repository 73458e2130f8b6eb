"""Operators' commands, on the app's `flask` command line (registered in create_app()):

    flask --app wsgi users set-role EMAIL admin|user

A command runs in an app context with the engine the factory bound; it needs the
database, not Redis."""

from __future__ import annotations

import getpass

import click
from flask.cli import AppGroup

from api.services.admin import set_role
from api.services.errors import DomainError
from db.models.user import ROLES
from db.session import db_session

users_cli = AppGroup("users", help="Accounts, for operators.")


@users_cli.command("set-role")
@click.argument("email")
@click.argument("role", type=click.Choice(ROLES))
def set_role_command(email: str, role: str) -> None:
    """Give the account with EMAIL the role ROLE.

    EMAIL is matched as login matches it; the change is written to the admin audit log."""
    try:
        change = set_role(db_session(), email=email, role=role, actor=_actor())
    except DomainError as error:
        raise click.ClickException(error.message) from None
    if change.changed:
        click.echo(f"{change.email}: role {change.was} -> {change.role}.")
    else:
        click.echo(f"{change.email} already has the role {change.role}; nothing changed.")


def _actor() -> str:
    """`cli:<login name>` in the audit log's actor column: who ran the command, as far
    as the machine knows."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name in the environment or the password database
        return "cli"
