"""The AdaScale Gymnasium environments: spec, observation encoder, reward, env, registration."""

from adascale_rl.environment.env import AdaScaleEnv
from adascale_rl.environment.registration import register_spec
from adascale_rl.environment.observation import FEATURES, Feedback, ObservationEncoder
from adascale_rl.environment.reward import PRESETS, Reward, make_reward
from adascale_rl.environment.spec import EnvSpec, find_spec, load_spec

__all__ = ["AdaScaleEnv", "FEATURES", "Feedback", "ObservationEncoder", "PRESETS", "Reward", "make_reward",
           "EnvSpec", "find_spec", "load_spec", "register_spec"]
