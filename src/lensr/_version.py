"""The package version, in its own module so that modules inside lensr never import the package."""

__version__ = "0.1.0"
