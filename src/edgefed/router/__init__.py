"""Scope routing: apply a request's ``X-Scope`` to any API path, with no per-call code."""
