"""Runnable HTTP simulators of Zoho CRM and Ameise that speak their real wire formats."""
