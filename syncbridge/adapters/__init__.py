"""The real implementations of the core's ports: Zoho CRM and Ameise over HTTP (OAuth2), the SQL store."""
