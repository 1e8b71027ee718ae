"""The VGGish network as a Keras 3 functional model.

Architecture of the original release (a VGG variant for 96x64 log-mel
patches): four conv blocks with 2x2 max-pooling, then three fully connected
layers. Layers are named after the checkpoint's variable scopes, so the map in
`vggish.checkpoint.SLIM_TO_KERAS` is one line per variable.

The output is fc2's *pre-activation*: upstream removed the final ReLU in 2020,
and keeping it is a known fidelity bug of other ports. A ReLU on top, if a
downstream model wants one, belongs to that model.

An empty batch (a clip shorter than one example has no examples) never reaches
the conv stack: oneDNN's Conv2D (TensorFlow's default on x86 CPUs) returns a
wrongly shaped empty tensor for it, and the next layer fails. The model pads
an empty batch to one zero example (`PadEmptyBatch`) and cuts the output back
to the input's batch (`TrimToBatch`, the `embedding` layer); a non-empty batch
passes through both unchanged.
"""

import contextlib
import dataclasses
import os
from typing import Optional, Union

import keras
import numpy as np
import tensorflow as tf

from vggish import checkpoint
from vggish import device
from vggish.params import BFLOAT16, DEFAULT_PARAMS, FLOAT32, Params, check_precision

# Checkpoint layout of the released weights; other Params cannot load them.
_CHECKPOINT_INPUT = (96, 64)
_CHECKPOINT_EMBEDDING_SIZE = 128


@dataclasses.dataclass(frozen=True)
class LayerSpec:
  """One row of the architecture table.

  kind: 'conv' (3x3, stride 1, SAME), 'pool' (2x2 max, stride 2, SAME),
    'flatten' or 'fc' (fully connected).
  """
  kind: str
  name: str  # The checkpoint scope's last component.
  size: int = 0  # Output channels or units; 0 for the embedding size.
  relu: bool = True


# The whole network. Shapes are for the default [96, 64] input.
ARCHITECTURE = (
    LayerSpec('conv', 'conv1', 64),  # [b, 96, 64, 64]
    LayerSpec('pool', 'pool1'),  # [b, 48, 32, 64]
    LayerSpec('conv', 'conv2', 128),  # [b, 48, 32, 128]
    LayerSpec('pool', 'pool2'),  # [b, 24, 16, 128]
    LayerSpec('conv', 'conv3_1', 256),  # [b, 24, 16, 256]
    LayerSpec('conv', 'conv3_2', 256),
    LayerSpec('pool', 'pool3'),  # [b, 12, 8, 256]
    LayerSpec('conv', 'conv4_1', 512),  # [b, 12, 8, 512]
    LayerSpec('conv', 'conv4_2', 512),
    LayerSpec('pool', 'pool4'),  # [b, 6, 4, 512]
    # NHWC row-major flatten, the order of fc1_1's rows in the checkpoint.
    LayerSpec('flatten', 'flatten'),  # [b, 12288]
    LayerSpec('fc', 'fc1_1', 4096),
    LayerSpec('fc', 'fc1_2', 4096),
    LayerSpec('fc', 'fc2', 0, relu=False),  # [b, 128], pre-activation.
)


@keras.saving.register_keras_serializable(package='vggish')
class PadEmptyBatch(keras.layers.Layer):
  """Pads an empty batch to one zero example; other batches pass unchanged.

  Call args:
    inputs: float32 [b, ...].

  Returns:
    float32 [max(b, 1), ...]: the inputs, or one zero example when b == 0.
  """

  def call(self, inputs):
    missing = tf.maximum(1 - tf.shape(inputs)[0], 0)  # 1 for an empty batch, else 0.
    paddings = [[0, missing]] + [[0, 0]] * (len(inputs.shape) - 1)
    return tf.pad(inputs, paddings)  # [max(b, 1), ...]

  def compute_output_shape(self, input_shape):
    return (None,) + tuple(input_shape[1:])


@keras.saving.register_keras_serializable(package='vggish')
class TrimToBatch(keras.layers.Layer):
  """Cuts `inputs` to the batch size of `reference` (undoes `PadEmptyBatch`).

  Call args:
    inputs: [max(b, 1), ...].
    reference: [b, ...], the model's input.

  Returns:
    inputs[:b]: [b, ...].
  """

  def call(self, inputs, reference):
    return inputs[:tf.shape(reference)[0]]

  def compute_output_shape(self, inputs_shape, reference_shape=None):
    batch = None if reference_shape is None else reference_shape[0]
    return (batch,) + tuple(inputs_shape[1:])


def _make_layer(spec: LayerSpec, params: Params, trainable: bool,
                random_init: bool, dtype=None):
  if random_init:
    # Upstream's training initialization: truncated N(0, 0.01) kernels, zero
    # biases (Keras' default bias initializer is zeros).
    init = keras.initializers.TruncatedNormal(stddev=params.init_stddev)
  else:
    # Weights are loaded next: skip sampling 72 M truncated normals (seconds).
    init = 'zeros'
  activation = 'relu' if spec.relu else None
  if spec.kind == 'conv':
    return keras.layers.Conv2D(
        spec.size, kernel_size=3, strides=1, padding='same',
        activation=activation, kernel_initializer=init, name=spec.name,
        trainable=trainable, dtype=dtype)
  if spec.kind == 'pool':
    return keras.layers.MaxPooling2D(
        pool_size=2, strides=2, padding='same', name=spec.name, dtype=dtype)
  if spec.kind == 'flatten':
    return keras.layers.Flatten(data_format='channels_last', name=spec.name,
                                dtype=dtype)
  if spec.kind == 'fc':
    return keras.layers.Dense(
        spec.size or params.embedding_size, activation=activation,
        kernel_initializer=init, name=spec.name, trainable=trainable, dtype=dtype)
  raise AssertionError(f'unknown layer kind {spec.kind!r}')


# TensorFlow's kernels expect buffers aligned like its own allocator's.
_ALIGNMENT = 64


def _aligned_copy(value: np.ndarray) -> np.ndarray:
  """A C-contiguous float32 copy of `value` whose data is 64-byte aligned."""
  raw = np.empty(value.nbytes + _ALIGNMENT, np.uint8)
  start = -raw.ctypes.data % _ALIGNMENT
  copy = raw[start:start + value.nbytes].view(np.float32).reshape(value.shape)
  np.copyto(copy, value)
  return copy


class _Preloaded(keras.initializers.Initializer):
  """Creates a weight with the checkpoint's value (instead of zeros, then a copy).

  Used only while the model is built (see `_preload`), so that a model built
  with a slim checkpoint allocates its 72 M weights once: the (memory-mapped)
  checkpoint is copied once into an aligned buffer, which becomes the
  variable's own memory through DLPack (`tf.constant` would copy it twice
  more, and building zeros then assigning copies it twice too). On a VM whose
  fresh memory is slow to fault in, this is seconds of start-up.
  """

  def __init__(self, value: np.ndarray):
    self._value = value

  def __call__(self, shape, dtype=None):
    if tuple(shape) != self._value.shape:
      raise checkpoint.CheckpointError(
          f'checkpoint weight of shape {list(self._value.shape)} for a layer '
          f'weight of shape {list(shape)}')
    if dtype is not None and keras.backend.standardize_dtype(dtype) != 'float32':
      return tf.constant(self._value, dtype=dtype)
    return tf.experimental.dlpack.from_dlpack(_aligned_copy(self._value).__dlpack__())


@contextlib.contextmanager
def _preload(layer, values):
  """Builds `layer` inside the block with `values` ({'kernel', 'bias'}) as its weights."""
  if values is None:
    yield
    return
  kept = layer.kernel_initializer, layer.bias_initializer
  layer.kernel_initializer = _Preloaded(values['kernel'])
  layer.bias_initializer = _Preloaded(values['bias'])
  try:
    yield
  finally:  # The layer's config keeps its serializable initializers.
    layer.kernel_initializer, layer.bias_initializer = kept


def _validate_weights_argument(weights, params: Params) -> None:
  if weights is None:
    return
  if not isinstance(weights, (str, os.PathLike)):
    raise ValueError(
        f'weights must be None or a path to a slim checkpoint or a '
        f'.weights.h5 file, got {type(weights).__name__}: {weights!r}')
  shape = (params.example_window_length, params.num_mel_bins)
  if (shape != _CHECKPOINT_INPUT or
      params.embedding_size != _CHECKPOINT_EMBEDDING_SIZE):
    raise ValueError(
        f'Pretrained weights need [96, 64] inputs and 128-d embeddings; these '
        f'params give {list(shape)} inputs and {params.embedding_size}-d '
        f'embeddings. Use weights=None to build an untrained model.')
  # Fail before spending seconds building 72 M parameters.
  if checkpoint.is_keras_weights_path(weights):
    if not os.path.isfile(weights):
      raise checkpoint.CheckpointError(f'No Keras weights file at {weights!r}.')
  else:
    checkpoint.resolve_slim_checkpoint(weights)


def VGGish(  # pylint: disable=invalid-name  (Keras applications style)
    weights: Optional[Union[str, os.PathLike]] = None,
    trainable: bool = True,
    name: str = 'vggish',
    params: Params = DEFAULT_PARAMS,
    allow_tf32: bool = False,
    precision: str = FLOAT32) -> keras.Model:
  """Builds the VGGish embedding model, optionally with pretrained weights.

  Args:
    weights: None (random init, as upstream's training would start), a slim
      checkpoint (the released V1 `vggish_model.ckpt`, a V2 prefix, with or
      without `.index`, or a directory with one checkpoint), or a `.weights.h5`
      file written by `vggish.checkpoint.save_weights`.
    trainable: False freezes every layer (e.g. feature extraction).
    name: the Keras model's name.
    params: hyperparameters; input size is `[example_window_length,
      num_mel_bins]` and output size `embedding_size`.
    allow_tf32: False switches TensorFloat-32 off process-wide
      (`vggish.device.configure_tf32`), so that an Ampere or later GPU
      computes the float32 embeddings the checkpoint was made for; True
      allows TF32 (faster, ~1e-3 relative error). No effect on CPUs.
    precision: 'float32' (the faithful default) or 'bfloat16': the conv and
      fully connected layers compute in bfloat16 with float32 weights, and
      the embeddings come out as float32; ~1.7x faster on a CPU with
      AVX512_BF16, embeddings within ~1e-2 relative (README "Performance").

  Returns:
    A functional `keras.Model` mapping `input_features` float32
    [batch, 96, 64] (log-mel examples) to `embedding` float32 [batch, 128],
    the pre-activation output of fc2. Any batch size works, 0 included.

  Raises:
    ValueError: a bad argument.
    vggish.checkpoint.CheckpointError: `weights` is missing, unreadable or
      does not hold VGGish's variables.
  """
  if not isinstance(trainable, bool):
    raise ValueError(f'trainable must be a bool, got {trainable!r}')
  if not isinstance(name, str) or not name:
    raise ValueError(f'name must be a non-empty string, got {name!r}')
  if not isinstance(params, Params):
    raise ValueError(f'params must be a vggish.Params, got {params!r}')
  if not isinstance(allow_tf32, bool):
    raise ValueError(f'allow_tf32 must be a bool, got {allow_tf32!r}')
  check_precision(precision)
  dtype = keras.DTypePolicy('mixed_bfloat16') if precision == BFLOAT16 else None
  _validate_weights_argument(weights, params)
  device.configure_tf32(allow_tf32)

  slim = weights is not None and not checkpoint.is_keras_weights_path(weights)
  with (checkpoint.slim_variables(weights) if slim
        else contextlib.nullcontext()) as variables:
    # A slim checkpoint's weights become the layers' initial values; a Keras
    # weights file is loaded after the build.
    preloaded = checkpoint.layer_weights(variables) if slim else {}
    num_frames = params.example_window_length
    num_bands = params.num_mel_bins
    features = keras.Input(
        shape=(num_frames, num_bands), dtype='float32', name='input_features')
    net = PadEmptyBatch(name='pad_empty_batch')(features)  # [max(b, 1), 96, 64]
    # A single-channel image, NHWC.
    net = keras.layers.Reshape((num_frames, num_bands, 1), name='reshape')(
        net)  # [max(b, 1), 96, 64, 1]
    for spec in ARCHITECTURE:
      layer = _make_layer(spec, params, trainable, random_init=weights is None,
                          dtype=dtype)
      with _preload(layer, preloaded.get(spec.name)):
        net = layer(net)
    # Names the output like upstream's graph tensor `vggish/embedding`.
    embedding = TrimToBatch(name='embedding')(net, features)  # [b, 128]
    model = keras.Model(inputs=features, outputs=embedding, name=name)
  model.trainable = trainable

  if weights is not None and not slim:
    checkpoint.load_weights(model, weights)
  return model
