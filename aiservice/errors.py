"""Domain errors. They know nothing of HTTP or psycopg; ``api/errors.py`` maps them once."""

from __future__ import annotations


class AIServiceError(Exception):
    """Base of every error the service raises on purpose."""

    code = "error"

    def __init__(self, message: str | None = None, *, details: list | None = None):
        super().__init__(message or (self.__doc__ or "").strip())
        self.message = message or (self.__doc__ or "").strip()
        self.details = details or []


class InvalidRequest(AIServiceError):
    """The request is not valid."""

    code = "validation_failed"


class InvalidJSON(AIServiceError):
    """The request body is not valid JSON."""

    code = "invalid_json"


class PayloadTooLarge(AIServiceError):
    """The request body is larger than the configured limit."""

    code = "payload_too_large"


class JobNotFound(AIServiceError):
    """No job with this id."""

    code = "job_not_found"


class BatchNotFound(AIServiceError):
    """No batch with this id."""

    code = "batch_not_found"


class Conflict(AIServiceError):
    """The request conflicts with the job's current state."""

    code = "conflict"

    def __init__(self, message: str | None = None, *, current_status: str | None = None):
        super().__init__(message)
        self.current_status = current_status


class InvalidTransition(Conflict):
    """This transition is not allowed from the job's current status."""

    code = "invalid_transition"


class LeaseMismatch(Conflict):
    """The job is running under another worker or a later attempt."""

    code = "lease_mismatch"


class IdempotencyConflict(Conflict):
    """The idempotency key was already used for a different request."""

    code = "idempotency_key_reused"


class Unavailable(AIServiceError):
    """The database is unavailable; try again shortly."""

    code = "unavailable"


class MigrationError(AIServiceError):
    """The migrations cannot be applied."""

    code = "migration_failed"
