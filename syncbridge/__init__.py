"""syncbridge: keeps Zoho CRM and Ameise (blau direkt) in sync, both ways.

This package is the core: it decides.  ``ports`` names every outside system and
the store as a small interface, ``handlers`` and ``dailyup`` hold the business
rules, ``mapping`` the field mapping, ``messages`` and ``errors`` the vocabulary;
``config`` reads the settings and ``bootstrap`` wires the adapters of
``syncbridge.adapters`` and ``producers`` in (the only module that does).  The
entrypoints (``webhooks``, ``consumers``, the CLI) call the handlers.
"""

__version__ = "0.1.0"
