"""Email: templates (rendering), the outbox callers add to (outbox), the delivery
of one outbox row (delivery), and the SMTP and console transports (transport)."""
