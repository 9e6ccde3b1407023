"""The review web app: auditors work cases, leaders watch revenue, ops watch the pipeline.

``create_app`` and ``serve`` are loaded on first use: the commands read this package's catalog
and formats (``i18n``, ``formats``, ``labels``) without the web app's libraries.
"""

__all__ = ["create_app", "serve"]


def __getattr__(name: str):
    if name in __all__:
        from pipeline.review import app

        return getattr(app, name)
    raise AttributeError(f"module 'pipeline.review' has no attribute {name!r}")
