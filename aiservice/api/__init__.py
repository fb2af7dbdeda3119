"""The HTTP API: a Falcon WSGI app."""
