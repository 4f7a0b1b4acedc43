"""The service's own database: links between systems, processed events, activity log, tokens."""
