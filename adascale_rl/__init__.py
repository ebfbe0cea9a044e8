"""adascale-rl: learned runtime adaptation for elastic on-device models.

Importing the package registers the ``AdaScale/...`` Gymnasium environments
declared in ``envs/*.yaml``.
"""

__version__ = "0.1.0"
