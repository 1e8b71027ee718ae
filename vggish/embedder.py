"""VGGish behind one traced `tf.function`: what every extraction pipeline calls.

`Embedder` is shared by the local extractor (`vggish.extractor`), the Beam
pipeline (`vggish.pipelines.beam`, one per worker process) and the benchmark:
float32 examples [k, 96, 64] in, float32 embeddings [k, 128] out.
"""

import collections
from typing import List, Tuple

import numpy as np
import tensorflow as tf

from vggish import workspace
from vggish.params import DEFAULT_BATCH_SIZE, DEFAULT_PARAMS, FLOAT32, Params


class Embedder:
  """A VGGish model behind one `tf.function`, traced once, always called at one shape.

  Extraction feeds it full batches of `batch_size` examples (several files'
  examples together) and one smaller last batch, which is zero-padded to
  `batch_size` (the padding's outputs are dropped). Every model call has the
  same shape because the kernels' arithmetic depends on it: on CPU (oneDNN and
  Eigen alike) an example's embedding moves by up to ~1e-5 between batches of
  1, 4, 16 or 33 examples, though not with its position or its neighbours in
  a batch of a given size. With one shape an embedding's bits depend on the
  example and `batch_size` only, not on how files were grouped into batches:
  `tools.extract`, any number of Beam workers and bundles, and a resumed run
  write the same bytes. The cost is at most `batch_size - 1` padded examples
  per flush (one per run, or per Beam bundle).

  Attributes:
    batch_size: the most examples per model call.
    example_shape: (96, 64), one example's frames and mel bands.
    embedding_size: 128.
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
    self.embedding_size = params.embedding_size
    self.example_shape = (params.example_window_length, params.num_mel_bins)
    shape = (batch_size,) + self.example_shape
    self._call = tf.function(
        self._forward, input_signature=[tf.TensorSpec(shape, tf.float32)])

  @classmethod
  def from_checkpoint(cls, checkpoint_path=None, batch_size: int = DEFAULT_BATCH_SIZE,
                      params: Params = DEFAULT_PARAMS,
                      allow_tf32: bool = False,
                      precision: str = FLOAT32) -> 'Embedder':
    """Builds VGGish with the checkpoint (default: the workspace's) and wraps it.

    Args:
      checkpoint_path: slim checkpoint or `.weights.h5`; default the workspace's.
      batch_size: the most examples per call.
      params: hyperparameters.
      allow_tf32: let Ampere+ GPUs run float32 convolutions and matmuls in
        TensorFloat-32 (faster, but embeddings move by ~1e-3 relative); the
        faithful default switches it off (see `vggish.model.VGGish`).
      precision: 'float32' (faithful) or 'bfloat16' (see `vggish.model.VGGish`).

    Raises:
      vggish.workspace.MissingModelFileError: no checkpoint where looked for.
      vggish.checkpoint.CheckpointError: the checkpoint cannot be loaded.
    """
    from vggish import model as model_lib  # Keras model construction is slow to import.
    path = workspace.require_model_file(checkpoint_path, workspace.CHECKPOINT_NAME)
    return cls(model_lib.VGGish(weights=str(path), trainable=False, params=params,
                                allow_tf32=allow_tf32, precision=precision),
               batch_size, params)

  @property
  def model(self):
    """The wrapped Keras model."""
    return self._model

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
      return np.zeros((0, self.embedding_size), np.float32)
    if k == self.batch_size:
      return self._call(examples).numpy()
    # A new buffer per call: Beam's worker threads share one Embedder.
    padded = np.zeros((self.batch_size,) + self.example_shape, np.float32)
    padded[:k] = examples
    return self._call(padded).numpy()[:k]


class BatchPacker:
  """Packs the examples of consecutive files into full batches for an `Embedder`.

  Both extraction pipelines feed the model through it, so that the files of a
  corpus (most of them a few examples long) share full batches:

    packer = BatchPacker(embedder)
    for key, examples in files:
      for done_key, embeddings in packer.add(key, examples):
        ...                      # files complete, in the order they were added
    for done_key, embeddings in packer.flush():
      ...                        # the last, partial batch

  Memory: one batch, the files whose examples are in it, and their
  embeddings so far.
  """

  def __init__(self, embedder: Embedder):
    self._embedder = embedder
    self._batch = np.zeros((embedder.batch_size,) + embedder.example_shape, np.float32)
    self._fill = 0
    # [key, embeddings [n, 128] filled batch by batch, examples still to come]
    self._pending = collections.deque()
    # (pending entry, first example in file, first row in batch, count)
    self._slots = []

  def __len__(self) -> int:
    """Files added whose embeddings are not all computed yet."""
    return len(self._pending)

  def add(self, key, examples: np.ndarray) -> List[Tuple[object, np.ndarray]]:
    """Queues a file's examples [n, 96, 64], running each batch that fills.

    Returns:
      (key, float32 embeddings [n, 128]) of the files now complete, in the
      order they were added (a file with no examples completes at once).
    """
    count = examples.shape[0]
    entry = [key, np.empty((count, self._embedder.embedding_size), np.float32), count]
    self._pending.append(entry)
    batch_size = self._embedder.batch_size
    offset = 0
    while offset < count:
      take = min(batch_size - self._fill, count - offset)
      self._batch[self._fill:self._fill + take] = examples[offset:offset + take]
      self._slots.append((entry, offset, self._fill, take))
      self._fill += take
      offset += take
      if self._fill == batch_size:
        self._run()
    return self._drain()

  def flush(self) -> List[Tuple[object, np.ndarray]]:
    """Runs the partial batch; returns every file still pending, completed."""
    if self._fill:
      self._run()
    done = self._drain()
    assert not self._pending, 'every added file must be complete after flush'
    return done

  def _run(self) -> None:
    embeddings = self._embedder(self._batch[:self._fill])
    for entry, first, row, count in self._slots:
      entry[1][first:first + count] = embeddings[row:row + count]
      entry[2] -= count
    self._fill, self._slots = 0, []

  def _drain(self) -> List[Tuple[object, np.ndarray]]:
    # Files complete in the order added, since batches are filled in that order.
    done = []
    while self._pending and self._pending[0][2] == 0:
      key, embeddings, _ = self._pending.popleft()
      done.append((key, embeddings))
    return done
