"""Heatmap methods. Each is one file registered with :func:`register_method`."""

from . import igos  # noqa: F401  (registers igos++)
from .base import METHODS, Method, Target, get_method, list_methods, register_method

__all__ = ["METHODS", "Method", "Target", "get_method", "list_methods", "register_method"]
