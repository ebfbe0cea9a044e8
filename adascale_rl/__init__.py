"""adascale-rl: learned runtime adaptation for elastic on-device models.

Importing the package registers the ``AdaScale/<Device>-<Workload>-v0`` Gymnasium
environments declared in ``envs/*.yaml`` (``adascale-rl envs list`` prints them).
"""

__version__ = "0.1.0"


def _register() -> None:
    from adascale_rl.environment.registration import register_all

    register_all()


_register()
