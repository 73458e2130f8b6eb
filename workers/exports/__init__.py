"""Exports: a job's output as a document, or all of a user's data as a zip."""
