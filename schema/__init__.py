"""JSON Schemas shipped with the service: request bodies and built-in task inputs."""
