"""Example components that extend detbox (see docs/customize.md)."""
