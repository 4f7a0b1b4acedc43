"""Clients of the outside systems (Zoho CRM, Ameise), each behind a small interface."""
