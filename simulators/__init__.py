"""HTTP simulators of Zoho CRM and Ameise that speak their real wire formats, the in-memory fakes of the ports, and the one-process dev stack."""
