"""Drivers that feed the core: replay from files; the worker lives in agents/."""
