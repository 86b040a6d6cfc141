"""fazt: a personal cloud in one Python install and one encrypted SQLite file."""

__version__ = "0.1.0"
__all__ = ["__version__"]
