"""DailyUp: the daily full export of blau direkt, read, stored, diffed and sent to the CRM.

:mod:`~syncbridge.deliveries` names the tables and the normalized row form,
:mod:`~syncbridge.dailyup.reader` reads a delivery (the one adapter that knows the
file format), :mod:`~syncbridge.dailyup.importer` stores it, computes the delta and publishes it,
:mod:`~syncbridge.dailyup.generate` writes synthetic deliveries (tests, demo, bench).
"""
