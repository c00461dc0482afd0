"""The kiltmq version: the installed distribution's, else the source tree's."""

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("kiltmq")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.1.0"
