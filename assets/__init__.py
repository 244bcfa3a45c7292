"""Bundled sample data (package data): a small narrow/wide pair and its truth."""
