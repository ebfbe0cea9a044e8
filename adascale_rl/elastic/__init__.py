"""The real elastic model: a multi-branch network, compression operators and profilers.

- :mod:`.network` -- the slimmable MobileNetV2 supernet with early exits (:class:`ElasticNet`),
  branches (:class:`Branch`) and one branch as a plain module (:class:`StaticNet`);
- :mod:`.data` -- the bundled digits, CIFAR-10 batches, image folders;
- :mod:`.train` -- joint training (sandwich rule + in-place distillation), fine-tuning;
- :mod:`.extract` -- slicing a branch out of the supernet, BN folding, MAC counting;
- :mod:`.operators` -- channel pruning (Torch-Pruning), int8 quantisation, low-rank;
- :mod:`.profilers`, :mod:`.memprobe`, :mod:`.host` -- latency, memory, size, energy, host facts;
- :mod:`.variants` -- recipes, the cached trained supernet, building deployable variants;
- :mod:`.profile` -- ``adascale-rl profile``.

See docs/ELASTIC.md.
"""

from adascale_rl.elastic.network import ArchConfig, Branch, ElasticNet, StaticNet  # noqa: F401
