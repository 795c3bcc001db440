"""The leaf room: ids, errors, settings, tokens and the scope language.

Nothing here imports a web framework, a database or an HTTP client, so every other
room can use it and it can be tested alone.
"""
