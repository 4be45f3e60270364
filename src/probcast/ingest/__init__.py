"""Readers: station tables and gridded NWP files into the canonical data model."""
