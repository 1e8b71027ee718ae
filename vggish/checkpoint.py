"""Reading the original slim checkpoint (V1 or V2) into the Keras VGGish model.

The released `vggish_model.ckpt` is a TF1 checkpoint in the V1 format (one
file); checkpoints written by newer TF1-style code are V2 (`<prefix>.index` +
`<prefix>.data-*`). Both are read with `tf.train.load_checkpoint`, which needs
no graph and none of the TF1 API.

Every variable of the `vggish/` scope is mapped explicitly to a Keras layer
weight (`SLIM_TO_KERAS`), and a checkpoint that does not match the map
exactly is rejected with one error listing every problem, so weights are never
silently left at their random initial values.
"""

import contextlib
import glob
import os
import re
from typing import Dict, Mapping, Optional, Tuple, Union

from absl import logging
import numpy as np
import tensorflow as tf

PathLike = Union[str, os.PathLike]

SCOPE = 'vggish/'

# The checkpoint's variables in the network's order: name -> shape (float32).
SLIM_VARIABLES: Dict[str, Tuple[int, ...]] = {
    'vggish/conv1/weights': (3, 3, 1, 64),
    'vggish/conv1/biases': (64,),
    'vggish/conv2/weights': (3, 3, 64, 128),
    'vggish/conv2/biases': (128,),
    'vggish/conv3/conv3_1/weights': (3, 3, 128, 256),
    'vggish/conv3/conv3_1/biases': (256,),
    'vggish/conv3/conv3_2/weights': (3, 3, 256, 256),
    'vggish/conv3/conv3_2/biases': (256,),
    'vggish/conv4/conv4_1/weights': (3, 3, 256, 512),
    'vggish/conv4/conv4_1/biases': (512,),
    'vggish/conv4/conv4_2/weights': (3, 3, 512, 512),
    'vggish/conv4/conv4_2/biases': (512,),
    'vggish/fc1/fc1_1/weights': (12288, 4096),
    'vggish/fc1/fc1_1/biases': (4096,),
    'vggish/fc1/fc1_2/weights': (4096, 4096),
    'vggish/fc1/fc1_2/biases': (4096,),
    'vggish/fc2/weights': (4096, 128),
    'vggish/fc2/biases': (128,),
}

# Checkpoint variable -> (Keras layer name, weight). Slim's conv weights are
# already HWIO and its fully connected weights [in, out], which is exactly
# Keras' layout, so the map needs no transposes. fc1_1's rows are in NHWC
# flatten order, which is why the Keras model flattens NHWC too.
SLIM_TO_KERAS: Dict[str, Tuple[str, str]] = {
    'vggish/conv1/weights': ('conv1', 'kernel'),
    'vggish/conv1/biases': ('conv1', 'bias'),
    'vggish/conv2/weights': ('conv2', 'kernel'),
    'vggish/conv2/biases': ('conv2', 'bias'),
    'vggish/conv3/conv3_1/weights': ('conv3_1', 'kernel'),
    'vggish/conv3/conv3_1/biases': ('conv3_1', 'bias'),
    'vggish/conv3/conv3_2/weights': ('conv3_2', 'kernel'),
    'vggish/conv3/conv3_2/biases': ('conv3_2', 'bias'),
    'vggish/conv4/conv4_1/weights': ('conv4_1', 'kernel'),
    'vggish/conv4/conv4_1/biases': ('conv4_1', 'bias'),
    'vggish/conv4/conv4_2/weights': ('conv4_2', 'kernel'),
    'vggish/conv4/conv4_2/biases': ('conv4_2', 'bias'),
    'vggish/fc1/fc1_1/weights': ('fc1_1', 'kernel'),
    'vggish/fc1/fc1_1/biases': ('fc1_1', 'bias'),
    'vggish/fc1/fc1_2/weights': ('fc1_2', 'kernel'),
    'vggish/fc1/fc1_2/biases': ('fc1_2', 'bias'),
    'vggish/fc2/weights': ('fc2', 'kernel'),
    'vggish/fc2/biases': ('fc2', 'bias'),
}

KERAS_WEIGHTS_SUFFIX = '.weights.h5'

_DOWNLOAD_HINT = ('The released checkpoint can be fetched with '
                  '`python -m tools.download`.')
# `<prefix>.index` and `<prefix>.data-00000-of-00001` both name a V2 prefix.
_V2_SUFFIX = re.compile(r'\.(index|data-\d{5}-of-\d{5})$')


class CheckpointError(ValueError):
  """A checkpoint is missing, unreadable, or does not hold VGGish's weights."""


def is_keras_weights_path(path: PathLike) -> bool:
  """Whether `path` names a Keras weights file rather than a slim checkpoint."""
  return os.fspath(path).endswith(('.h5', '.keras'))


def resolve_slim_checkpoint(path: PathLike) -> str:
  """The path `tf.train.load_checkpoint` needs for a user-given checkpoint path.

  Args:
    path: a V1 checkpoint file; a V2 prefix, optionally with its `.index` or
      `.data-*` suffix; or a directory holding exactly one checkpoint (a V2
      `*.index` or a `*.ckpt` file).

  Returns:
    The V1 file or V2 prefix, as a string.

  Raises:
    CheckpointError: nothing at `path` looks like a checkpoint.
  """
  path = os.fspath(path)
  if os.path.isdir(path):
    return _single_checkpoint_in(path)
  if os.path.isfile(path) and not _V2_SUFFIX.search(path):
    return path  # A V1 file (or a V2 prefix that is also a file; rare).
  prefix = _V2_SUFFIX.sub('', path)
  if os.path.isfile(prefix + '.index'):
    return prefix
  if os.path.isfile(prefix):
    return prefix
  raise CheckpointError(
      f'No checkpoint found at {path!r} (neither a file nor a V2 prefix with '
      f'an .index file). {_DOWNLOAD_HINT}')


def _single_checkpoint_in(directory: str) -> str:
  v2 = {p[:-len('.index')]
        for p in glob.glob(os.path.join(directory, '*.index'))}
  v1 = {p for p in glob.glob(os.path.join(directory, '*.ckpt'))
        if os.path.isfile(p)}
  candidates = sorted(v2 | v1)
  if len(candidates) != 1:
    found = ', '.join(os.path.basename(c) for c in candidates) or 'none'
    raise CheckpointError(
        f'Directory {directory!r} must hold exactly one checkpoint (a V1 '
        f'*.ckpt file or a V2 *.index prefix); found {found}. Pass the '
        f'checkpoint file or prefix itself.')
  return candidates[0]


def _is_ignored(name: str) -> bool:
  """Variables that are not VGGish's weights but may share its checkpoint.

  Anything outside the `vggish/` scope (`global_step`, Adam's `beta1_power`,
  a classifier head trained on top) and optimizer slots or moving averages of
  a known variable (`vggish/conv1/weights/Adam`) are not part of the model.
  """
  if not name.startswith(SCOPE):
    return True
  return any(name.startswith(known + '/') for known in SLIM_VARIABLES)


def validate_slim_variables(
    shape_map: Mapping[str, Tuple[int, ...]],
    dtype_map: Optional[Mapping[str, tf.dtypes.DType]] = None,
    source: str = 'checkpoint') -> None:
  """Checks a checkpoint's variable names and shapes against `SLIM_VARIABLES`.

  Args:
    shape_map: variable name -> shape, as the checkpoint lists them.
    dtype_map: optional variable name -> tf dtype; VGGish's variables must be
      floating point.
    source: how to name the checkpoint in the error message.

  Raises:
    CheckpointError: listing every missing, mis-shaped or non-float variable
      at once, so one fix-and-retry suffices. Extra variables are never an
      error: outside `vggish/` (or optimizer slots of a known variable) they
      are ignored silently, other extras inside `vggish/` with a warning.
  """
  problems = []
  for name, expected in SLIM_VARIABLES.items():
    if name not in shape_map:
      problems.append(f'missing: {name} (expected shape {list(expected)})')
      continue
    actual = tuple(int(d) for d in shape_map[name])
    if actual != expected:
      problems.append(f'wrong shape: {name} expected {list(expected)}, '
                      f'got {list(actual)}')
    if dtype_map is not None and not dtype_map[name].is_floating:
      problems.append(f'wrong dtype: {name} expected float32, got '
                      f'{dtype_map[name].name}')
  extras = []
  for name in sorted(shape_map):
    if name in SLIM_VARIABLES:
      continue
    if _is_ignored(name):
      logging.debug('Ignoring checkpoint variable %s (not a VGGish weight).',
                    name)
    else:
      extras.append(f'{name} (shape {[int(d) for d in shape_map[name]]})')
  if problems:
    message = (f'{source} does not hold the VGGish variables ({len(problems)} '
               f'problem(s)):\n  ' + '\n  '.join(problems))
    if extras:
      message += ('\nIt also holds variables VGGish does not use:\n  ' +
                  '\n  '.join(extras))
    raise CheckpointError(message)
  if extras:
    # Every VGGish weight is present with its shape, so loading is exact; the
    # extras (e.g. a layer trained on top inside the same scope) are ignored,
    # loudly, in case the checkpoint is of a different architecture.
    logging.warning(
        '%s holds %d variable(s) inside %r that VGGish does not use; they are '
        'ignored: %s', source, len(extras), SCOPE, ', '.join(extras))


def _open_reader(path: str):
  try:
    return tf.train.load_checkpoint(path)
  except (tf.errors.OpError, ValueError) as e:
    # DataLossError "not an sstable" is what a truncated download gives.
    raise CheckpointError(
        f'{path!r} is not a readable TensorFlow checkpoint (truncated or '
        f'corrupt download?): {e}. {_DOWNLOAD_HINT}') from e


def inspect_slim_checkpoint(path: PathLike):
  """Resolves, opens and validates a slim checkpoint without reading tensors.

  Args:
    path: see `resolve_slim_checkpoint`.

  Returns:
    (resolved path, `tf.train.CheckpointReader`).

  Raises:
    CheckpointError: the checkpoint is missing, unreadable or does not match
      `SLIM_VARIABLES`.
  """
  resolved = resolve_slim_checkpoint(path)
  reader = _open_reader(resolved)
  validate_slim_variables(reader.get_variable_to_shape_map(),
                          reader.get_variable_to_dtype_map(),
                          source=f'Checkpoint {resolved!r}')
  return resolved, reader


def read_slim_checkpoint(path: PathLike) -> Dict[str, np.ndarray]:
  """Reads and validates VGGish's variables from a slim checkpoint.

  Args:
    path: see `resolve_slim_checkpoint` (V1 file, V2 prefix with or without
      `.index`, or a directory with one checkpoint).

  Returns:
    Dict from each name of `SLIM_VARIABLES` (in that order) to a float32
    array of the listed shape. Other variables (optimizer state, other
    scopes) are ignored.

  Raises:
    CheckpointError: the checkpoint is missing, unreadable or does not match
      `SLIM_VARIABLES`.
  """
  with slim_variables(path) as variables:
    return {name: np.array(value) for name, value in variables.items()}


@contextlib.contextmanager
def slim_variables(path: PathLike):
  """Like `read_slim_checkpoint`, but the arrays are valid inside the block only.

  A V1 checkpoint (the released file's format) is memory-mapped and its
  arrays are views of the file (`vggish.checkpoint_v1`: no parse, no copy; a
  fraction of a second where TensorFlow's reader takes seconds); anything
  else, or a V1 file that reader does not handle, goes through TensorFlow's
  reader.

  Yields:
    name -> float32 array for each name of `SLIM_VARIABLES`, in that order.

  Raises:
    CheckpointError: see `read_slim_checkpoint`.
  """
  resolved = resolve_slim_checkpoint(path)
  fast = contextlib.ExitStack()
  with fast:
    mapped = None
    if os.path.isfile(resolved):  # A V1 file (a V2 prefix is not a file).
      from vggish import checkpoint_v1  # pylint: disable=import-outside-toplevel
      try:
        mapped = fast.enter_context(checkpoint_v1.open_checkpoint(resolved))
      except (checkpoint_v1.UnsupportedCheckpoint, OSError) as e:
        logging.debug('%s: reading with TensorFlow (%s)', resolved, e)
    if mapped is not None:
      tensors, arrays = mapped
      validate_slim_variables(
          {name: info.shape for name, info in tensors.items()},
          {name: tf.dtypes.as_dtype(info.dtype) for name, info in tensors.items()},
          source=f'Checkpoint {resolved!r}')
      logging.info('Read %d VGGish variables from %s.', len(SLIM_VARIABLES), resolved)
      yield {name: arrays[name] for name in SLIM_VARIABLES}
      return
  yield _read_with_tensorflow(resolved)


def _read_with_tensorflow(resolved: str) -> Dict[str, np.ndarray]:
  _, reader = inspect_slim_checkpoint(resolved)
  variables = {}
  for name in SLIM_VARIABLES:
    try:
      value = reader.get_tensor(name)
    except (tf.errors.OpError, IndexError) as e:
      # A V2 checkpoint whose .data file is truncated opens fine and fails here
      # (the reader raises IndexError "Read less bytes than requested").
      raise CheckpointError(
          f'Cannot read {name} from {resolved!r} (truncated or corrupt '
          f'download?): {e}') from e
    variables[name] = np.asarray(value, dtype=np.float32)
  logging.info('Read %d VGGish variables from %s.', len(variables), resolved)
  return variables


def layer_weights(variables: Mapping[str, np.ndarray]) -> Dict[str, Dict[str, np.ndarray]]:
  """Checkpoint variables regrouped per Keras layer through `SLIM_TO_KERAS`.

  Returns:
    Keras layer name -> {'kernel': array, 'bias': array}.
  """
  per_layer = {}
  for name, (layer_name, weight) in SLIM_TO_KERAS.items():
    per_layer.setdefault(layer_name, {})[weight] = variables[name]
  return per_layer


def assign_slim_variables(model, variables: Mapping[str, np.ndarray]) -> None:
  """Copies checkpoint variables into a Keras VGGish through `SLIM_TO_KERAS`.

  Args:
    model: a `vggish.model.VGGish` (any Keras model with the layers named in
      `SLIM_TO_KERAS`).
    variables: name -> array, as `read_slim_checkpoint` returns.

  Raises:
    ValueError: the model lacks a layer, or its weights have other shapes
      (e.g. it was built with non-default `Params`).
  """
  for layer_name, weights in layer_weights(variables).items():
    try:
      layer = model.get_layer(layer_name)
    except ValueError as e:
      raise ValueError(f'Model {model.name!r} has no layer {layer_name!r}; '
                       f'is it a VGGish model?') from e
    values = [weights['kernel'], weights['bias']]
    expected = [tuple(v.shape) for v in (layer.kernel, layer.bias)]
    actual = [tuple(v.shape) for v in values]
    if expected != actual:
      raise ValueError(
          f'Layer {layer_name!r} of model {model.name!r} has weight shapes '
          f'{expected}, the checkpoint {actual}; build the model with the '
          f'default Params to load this checkpoint.')
    layer.kernel.assign(values[0])
    layer.bias.assign(values[1])


def load_slim_checkpoint(model, path: PathLike) -> None:
  """Loads a slim VGGish checkpoint (V1 or V2) into a Keras VGGish in place.

  Raises:
    CheckpointError: see `read_slim_checkpoint`.
  """
  with slim_variables(path) as variables:
    assign_slim_variables(model, variables)


def load_weights(model, path: PathLike) -> None:
  """Loads weights into a Keras VGGish: Keras `.weights.h5` or slim checkpoint.

  Args:
    model: a `vggish.model.VGGish`.
    path: a file ending in `.weights.h5` (written by `save_weights`), or a
      slim checkpoint (see `resolve_slim_checkpoint`).

  Raises:
    CheckpointError: the file is missing or unreadable, or does not match.
  """
  path = os.fspath(path)
  if not is_keras_weights_path(path):
    load_slim_checkpoint(model, path)
    return
  if not os.path.isfile(path):
    raise CheckpointError(f'No Keras weights file at {path!r}.')
  try:
    model.load_weights(path)
  except (OSError, ValueError) as e:
    raise CheckpointError(
        f'Cannot load Keras weights from {path!r} into model '
        f'{model.name!r}: {e}') from e
  logging.info('Loaded Keras weights from %s.', path)


def save_weights(model, path: PathLike) -> None:
  """Saves a model's weights as a Keras `.weights.h5` file.

  Args:
    model: a Keras model.
    path: destination; must end in `.weights.h5` (Keras 3 requires it). Its
      directory is created if needed.

  Raises:
    ValueError: `path` has another suffix.
  """
  path = os.fspath(path)
  if not path.endswith(KERAS_WEIGHTS_SUFFIX):
    raise ValueError(f'Keras weights files must end in '
                     f'{KERAS_WEIGHTS_SUFFIX!r}, got {path!r}.')
  directory = os.path.dirname(path)
  if directory:
    os.makedirs(directory, exist_ok=True)
  model.save_weights(path)
  logging.info('Saved Keras weights to %s.', path)
