"""The review web app: auditors work cases, leaders watch revenue, ops watch the pipeline."""

from pipeline.review.app import create_app, serve

__all__ = ["create_app", "serve"]
