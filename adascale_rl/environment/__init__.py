"""The AdaScale Gymnasium environments: spec, observation encoder, reward, env, registration.

The observation encoder, the reward and the specs are plain Python and numpy; the
environment class (which needs Gymnasium) is imported on first use, so the on-device
selector can use the encoder without Gymnasium.
"""

from adascale_rl.environment.observation import FEATURES, Feedback, ObservationEncoder
from adascale_rl.environment.reward import PRESETS, Reward, make_reward
from adascale_rl.environment.spec import EnvSpec, find_spec, load_spec

__all__ = ["AdaScaleEnv", "FEATURES", "Feedback", "ObservationEncoder", "PRESETS", "Reward", "make_reward",
           "EnvSpec", "find_spec", "load_spec", "register_spec"]


def __getattr__(name: str):
    if name == "AdaScaleEnv":
        from adascale_rl.environment.env import AdaScaleEnv

        return AdaScaleEnv
    if name == "register_spec":
        from adascale_rl.environment.registration import register_spec

        return register_spec
    raise AttributeError(f"module 'adascale_rl.environment' has no attribute {name!r}")
