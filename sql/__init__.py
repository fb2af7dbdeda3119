"""Plain SQL shipped with the service: migrations/, queries/ (named blocks) and reports/."""
