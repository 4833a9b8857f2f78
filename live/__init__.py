"""Live sessions: Django sessions that every open tab watches change, live."""

__version__ = "0.2.0"
