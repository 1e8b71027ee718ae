"""VGGish behind one traced `tf.function`: what every extraction pipeline calls.

`Embedder` is shared by the local extractor (`vggish.extractor`), the Beam
pipeline (`vggish.pipelines.beam`, one per worker process) and the benchmark:
float32 examples [k, 96, 64] in, float32 embeddings [k, 128] out.
"""

import numpy as np
import tensorflow as tf

from vggish import workspace
from vggish.params import DEFAULT_PARAMS, Params

# On a 2-core CPU the model's rate per example is about flat from batch 16 up
# (tools.benchmark sweeps it); larger batches only hold more files' examples.
DEFAULT_BATCH_SIZE = 32


class Embedder:
  """A VGGish model behind one `tf.function`, traced once for every batch size.

  Extraction feeds it full batches of `batch_size` examples (several files'
  examples together) and one smaller last batch. The batch dimension of the
  traced signature is left open rather than padding that last batch: on CPU
  the cost per example does not depend on the batch size from 8 up, and the
  outputs of one example do not depend on its batch neighbours (the golden
  byte test runs with mixed batches).

  Attributes:
    batch_size: the most examples per model call.
  """

  def __init__(self, model, batch_size: int = DEFAULT_BATCH_SIZE,
               params: Params = DEFAULT_PARAMS):
    """Wraps a model.

    Args:
      model: a Keras VGGish, [b, 96, 64] float32 -> [b, 128] float32.
      batch_size: the most examples per call.
      params: for the example shape.
    """
    if batch_size < 1:
      raise ValueError(f'batch_size must be >= 1, got {batch_size}')
    self.batch_size = batch_size
    self._model = model
    self._embedding_size = params.embedding_size
    shape = (None, params.example_window_length, params.num_mel_bins)
    self._call = tf.function(
        self._forward, input_signature=[tf.TensorSpec(shape, tf.float32)])

  @classmethod
  def from_checkpoint(cls, checkpoint_path=None, batch_size: int = DEFAULT_BATCH_SIZE,
                      params: Params = DEFAULT_PARAMS,
                      allow_tf32: bool = False) -> 'Embedder':
    """Builds VGGish with the checkpoint (default: the workspace's) and wraps it.

    Args:
      checkpoint_path: slim checkpoint or `.weights.h5`; default the workspace's.
      batch_size: the most examples per call.
      params: hyperparameters.
      allow_tf32: let Ampere+ GPUs run float32 convolutions and matmuls in
        TensorFloat-32 (faster, but embeddings move by ~1e-3 relative); the
        faithful default switches it off (see `vggish.model.VGGish`).

    Raises:
      vggish.workspace.MissingModelFileError: no checkpoint where looked for.
      vggish.checkpoint.CheckpointError: the checkpoint cannot be loaded.
    """
    from vggish import model as model_lib  # Keras model construction is slow to import.
    path = workspace.require_model_file(checkpoint_path, workspace.CHECKPOINT_NAME)
    return cls(model_lib.VGGish(weights=str(path), trainable=False, params=params,
                                allow_tf32=allow_tf32),
               batch_size, params)

  @property
  def tracing_count(self) -> int:
    """Times the model function was traced (1 after any number of calls)."""
    return self._call.experimental_get_tracing_count()

  def _forward(self, examples):
    return self._model(examples, training=False)

  def __call__(self, examples: np.ndarray) -> np.ndarray:
    """Embeds up to `batch_size` examples.

    Args:
      examples: float32 [k, 96, 64], 0 <= k <= batch_size.

    Returns:
      float32 [k, 128].
    """
    k = examples.shape[0]
    if k > self.batch_size:
      raise ValueError(f'got {k} examples for a batch of at most {self.batch_size}')
    if k == 0:
      # Nothing to run (and oneDNN's convolutions mis-shape an empty batch).
      return np.zeros((0, self._embedding_size), np.float32)
    return self._call(examples).numpy()
