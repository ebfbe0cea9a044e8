"""Resource context: schema, trace datasets, live monitor, recorder, synthesizer."""

from adascale_rl.context.schema import DEFAULTS, FIELDS, NAMES, OPTIONAL, REQUIRED, Field, field
from adascale_rl.context.traces import Trace, TraceDataset, TraceError, load_dataset, load_trace, validate_path

__all__ = [
    "DEFAULTS", "FIELDS", "NAMES", "OPTIONAL", "REQUIRED", "Field", "field",
    "Trace", "TraceDataset", "TraceError", "load_dataset", "load_trace", "validate_path",
]
