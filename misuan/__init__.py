"""misuan: make data usable but not visible.

Layers, lowest first (imports only go downward; ``tests/test_layers.py`` enforces it):

``errors`` -> ``crypto/`` -> ``net/`` -> ``protocols/`` -> ``ml/``, ``audit/``, ``datasets/``
-> ``api``, ``cli``, ``node/``, ``report``, ``demo``.

Importing the package has no side effects; the public Python API lives in :mod:`misuan.api`.
"""

__version__ = "0.1.0"
