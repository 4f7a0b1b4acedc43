"""In-memory fakes of the ports (Zoho, Ameise, the store), with the semantics of the real adapters, for fast tests."""
