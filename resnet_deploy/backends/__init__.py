"""Inference backends behind one small interface (:class:`~resnet_deploy.backends.base.InferenceModel`)."""

from .base import InferenceModel

__all__ = ["InferenceModel"]
