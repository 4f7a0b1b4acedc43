"""syncbridge: keeps Zoho CRM and Ameise (blau direkt) in sync, both ways."""

__version__ = "0.1.0"
