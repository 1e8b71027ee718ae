"""VGGish in TensorFlow 2 / Keras 3: a faithful port of Google's audio embedding model."""

from vggish.params import DEFAULT_PARAMS, Params
