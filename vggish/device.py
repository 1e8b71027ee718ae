"""Numerics settings of the device that runs VGGish.

On Ampere and later NVIDIA GPUs TensorFlow computes float32 matmuls and
convolutions in TensorFloat-32 by default (10-bit mantissa inputs). That moves
VGGish's embeddings by ~1e-3 relative and their postprocessed bytes by more
than one step, so the faithful path turns TF32 off whenever it builds the
model (`vggish.model.VGGish(allow_tf32=False)`, the default). The switch is
process-wide in TensorFlow; nothing that is saved (SavedModel, TFLite, Keras
files) carries it, so a process that loads an export must set it itself.
CPUs never use TF32: there the setting changes nothing.
"""

import functools

from absl import logging
import tensorflow as tf


def configure_tf32(allow: bool = False) -> bool:
  """Switches TensorFloat-32 for float32 matmuls and convolutions on or off.

  Logs once per process and choice when a GPU is visible (no message on a
  CPU-only machine, where TF32 does not exist).

  Args:
    allow: False (the faithful float32 numerics) or True (TF32 where the GPU
      has it: faster, embeddings off by ~1e-3 relative).

  Returns:
    The setting before this call.

  Raises:
    ValueError: `allow` is not a bool.
  """
  if not isinstance(allow, bool):
    raise ValueError(f'allow must be a bool, got {allow!r}')
  previous = tf.config.experimental.tensor_float_32_execution_enabled()
  tf.config.experimental.enable_tensor_float_32_execution(allow)
  gpus = tf.config.list_physical_devices('GPU')
  if gpus:
    _log_choice(allow, len(gpus))
  return previous


@functools.lru_cache(maxsize=None)
def _log_choice(allow: bool, num_gpus: int) -> None:
  """Logs a TF32 choice once per process (the cache remembers it was logged)."""
  if allow:
    logging.info('TensorFloat-32 allowed on %d GPU(s): faster, but VGGish '
                 'embeddings differ by ~1e-3 relative from float32', num_gpus)
  else:
    logging.info('TensorFloat-32 off on %d GPU(s): float32 matmuls and '
                 'convolutions, as the reference embeddings', num_gpus)
