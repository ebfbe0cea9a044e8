"""Resource context: schema, trace datasets, live monitor, recorder, synthesizer.

The schema and trace names are imported eagerly (they are light); ``Monitor``,
``record``, ``synthesize``, ``synthesize_sequence`` and ``build_recipe`` are
imported on first use so that ``import adascale_rl.context`` stays cheap.
"""

from adascale_rl.context.schema import DEFAULTS, FIELDS, NAMES, OPTIONAL, REQUIRED, Field, field
from adascale_rl.context.traces import Trace, TraceDataset, TraceError, load_dataset, load_trace, validate_path

_LAZY = {
    "Monitor": "adascale_rl.context.monitor",
    "record": "adascale_rl.context.recorder",
    "synthesize": "adascale_rl.context.synth",
    "synthesize_sequence": "adascale_rl.context.synth",
    "build_recipe": "adascale_rl.context.synth",
}

__all__ = [
    "DEFAULTS", "FIELDS", "NAMES", "OPTIONAL", "REQUIRED", "Field", "field",
    "Trace", "TraceDataset", "TraceError", "load_dataset", "load_trace", "validate_path", *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'adascale_rl.context' has no attribute {name!r}")
