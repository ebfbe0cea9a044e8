"""adascale-rl: learned runtime adaptation for elastic on-device models.

The ``AdaScale/<Device>-<Workload>-v4`` Gymnasium environments declared in
``envs/*.yaml`` are registered as soon as Gymnasium is imported (now, if it already
is; otherwise when it first is), so ``import adascale_rl`` costs nothing for code
that never touches Gymnasium: the on-device selector (:mod:`adascale_rl.runtime`)
imports neither Gymnasium, torch nor stable-baselines3. ``adascale-rl envs list``
prints the environments.
"""

from __future__ import annotations

import sys

__version__ = "0.2.0"


def _register() -> None:
    from adascale_rl.environment.registration import register_all

    register_all()


class _RegisterOnGymnasiumImport:
    """A meta-path finder that registers the environments right after ``gymnasium`` is imported.

    It only wraps the real loader of the top-level ``gymnasium`` module and removes itself
    the first time it is asked, so every other import goes by untouched.
    """

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "gymnasium":
            return None
        sys.meta_path.remove(self)
        import importlib.util

        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        real_exec = spec.loader.exec_module

        def exec_module(module):
            real_exec(module)
            sys.modules.setdefault(fullname, module)
            _register()

        spec.loader.exec_module = exec_module
        return spec


if "gymnasium" in sys.modules:
    _register()
elif not any(isinstance(f, _RegisterOnGymnasiumImport) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterOnGymnasiumImport())
