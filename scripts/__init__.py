"""Project scripts run by the Makefile."""
