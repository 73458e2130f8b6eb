"""Stripe billing: the calls we make to Stripe (stripe_api) and the events it
sends us (events), which put users on the plans they pay for."""
