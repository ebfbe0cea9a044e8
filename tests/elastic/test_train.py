import torch

from adascale_rl.elastic.extract import supernet_pass_macs
from adascale_rl.elastic.network import ElasticNet
from adascale_rl.elastic.train import BACKWARD_FACTOR, TrainConfig, train_joint


def test_settings_added_later_leave_old_configurations_json_unchanged():
    """The cache key hashes ``to_json``: a configuration that does not use the later settings
    must hash as before they existed (the shipped catalog's cached variants stay findable)."""
    assert set(TrainConfig().to_json()) == {"epochs", "batch_size", "lr", "weight_decay", "label_smoothing",
                                            "n_random", "kd_temperature", "kd_weight", "augment_shift", "seed"}
    d = TrainConfig(teacher_res_cycle=(16, 24), teacher_top_epochs=2).to_json()
    assert d["teacher_res_cycle"] == [16, 24] and d["teacher_top_epochs"] == 2


def _joint_macs(data, arch, **kw) -> float:
    torch.manual_seed(0)
    return train_joint(ElasticNet(arch), data, TrainConfig(epochs=1, batch_size=32, seed=0, **kw), progress=False).macs


def test_teacher_res_cycle_runs_the_largest_pass_at_its_resolutions(small_digits, tiny_arch):
    data = small_digits.subset(64, 16)
    net = ElasticNet(tiny_arch)
    top, low = tiny_arch.resolutions[-1], tiny_arch.resolutions[0]
    per_image = supernet_pass_macs(net, 1.0, top, data.x_train[:1]) - supernet_pass_macs(net, 1.0, low,
                                                                                           data.x_train[:1])
    default = _joint_macs(data, tiny_arch)
    assert _joint_macs(data, tiny_arch, teacher_res_cycle=(top,)) == default
    # the random passes draw the same pairs (same generator), only the largest pass got cheaper
    saved = default - _joint_macs(data, tiny_arch, teacher_res_cycle=(low,))
    assert abs(saved - (1 + BACKWARD_FACTOR) * len(data.y_train) * per_image) < 1e-6 * default
    # alternating: half the steps (1 of the 2 batches of 32) at the low resolution
    half = default - _joint_macs(data, tiny_arch, teacher_res_cycle=(top, low))
    assert abs(half - (1 + BACKWARD_FACTOR) * 32 * per_image) < 1e-6 * default
    # the last epochs at the top resolution: a 1-epoch run whose last epoch is "top" is the default run
    assert _joint_macs(data, tiny_arch, teacher_res_cycle=(low,), teacher_top_epochs=1) == default
