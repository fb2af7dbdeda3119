"""AI Service: a PostgreSQL-backed job service for AI work."""

__version__ = "0.1.0"
