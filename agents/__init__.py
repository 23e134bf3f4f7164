"""Faust agents of riskstream: topics, tables and timers wired to the core."""
