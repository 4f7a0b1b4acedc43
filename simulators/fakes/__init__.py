"""In-memory fakes of the outside systems, with the same semantics as the real clients, for fast tests."""
