"""Heatmap methods. Each is one file registered with :func:`register_method`."""

from . import attention, gradcam, igos, igos2, iia, occlusion, rise, subset, tam, tmm  # noqa: F401  (each registers its method)
from .base import METHODS, Method, Target, get_method, list_methods, register_method

__all__ = ["METHODS", "Method", "Target", "get_method", "list_methods", "register_method"]
