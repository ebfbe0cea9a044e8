"""The exported controller on the device (see adascale_rl.runtime.selector)."""
