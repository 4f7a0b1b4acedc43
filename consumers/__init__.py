"""Queue consumers: thin kombu entrypoints around the business handlers."""
