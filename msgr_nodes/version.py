"""The package version, in a module of its own so that any module may import it without
importing the package's public API (which imports most of the package)."""
__version__ = "0.1.0"
