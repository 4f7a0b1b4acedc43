"""Entrypoints on the queues: one thin kombu consumer per worker, each loading a message through its contract and calling one handler."""
