"""misuan: make data usable but not visible.

Layers, lowest first (imports only go downward; ``tests/test_layers.py`` enforces it):

``errors``, ``atomic_files``, ``params`` -> ``crypto/`` -> ``net/`` -> ``protocols/`` -> ``ml/``,
``audit/``, ``datasets/`` -> ``api``, ``node/``, ``report``, ``demo`` -> ``cli`` (the table and its
reasons: ``docs/architecture.md``).

Importing the package has no side effects; the public Python API lives in :mod:`misuan.api`.
"""

__version__ = "0.1.0"
