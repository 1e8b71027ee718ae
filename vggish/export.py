"""Deployable exports of VGGish: a SavedModel and TFLite models that take a waveform.

Each export holds the whole pipeline from 16 kHz audio to embeddings (the
`LogMelFrontend` layer, the network and, optionally, upstream's PCA and 8-bit
quantization), so that a server or a phone needs neither this package nor any
preprocessing of its own. Two entry points, in both formats:

- `embed_waveform`: `waveform` float32 [batch, samples] (mono, 16 kHz, items
  zero-padded to a common length) and `lengths` int32 [batch] (valid samples
  per item) -> `embeddings` float32 [batch, max_examples, 128], `num_examples`
  int32 [batch] and, when PCA parameters were given, `quantized` uint8
  [batch, max_examples, 128]. Slots at and after `num_examples[i]` hold zeros;
  max_examples is at least 1. An item shorter than one example (0.975 s) gets
  no example, as upstream.
- `embed_examples`: `examples` float32 [n, 96, 64] (log-mel examples, e.g. from
  `vggish.frontend`) -> `embeddings` float32 [n, 128] (+ `quantized` uint8
  [n, 128]).

Formats:
- SavedModel (`export_saved_model`): loads with `tf.saved_model.load` alone
  and places ops on a GPU when there is one (no device is pinned). The PCA runs
  in float64, so `quantized` equals `vggish.postprocess.Postprocessor`'s bytes.
  `serving_default` is `embed_waveform`, for TF Serving requests that name no
  signature.
- TFLite (`export_tflite`): builtin ops only (the STFT becomes TFLite's RFFT2D),
  so plain `tf.lite.Interpreter` / LiteRT runs it without Flex; one `.tflite`
  file with both signatures (`get_signature_runner`). TFLite has no float64
  kernels, so the PCA runs in float32 (upstream measured ~1e-5 of the bytes
  flipped by one). Dynamic-range quantization (`quantize='dynamic'`) stores
  conv and dense weights as int8 (4x smaller) and quantizes their inputs per
  call (conv1's 576 weights stay float32: the converter skips small tensors);
  the frontend's mel projection and the PCA keep float32 weights
  (`_restore_float_weights`), because int8 there shifts log-mel values by up
  to ~3. int8 weights cost accuracy: ~2.5 % relative error on the embeddings
  (cosine 0.9996), which the PCA turns into byte errors of several steps
  (`tools/export_report.py` measures it; ~44 % of the recipe checkpoint's
  bytes within +-1). The weights' rounding itself is the cause, not the
  per-call int8 inputs: int8 weights in any one layer from conv2 to fc2 alone
  (float activations) already leave only 75-91 % of the bytes within +-1, so
  no split of layers between int8 and float32 reaches 99 % (keeping every
  conv float32 gives 55 %, at about the same speed). The signature runners resize their inputs on
  each call (any batch and length). TFLite's Python interpreter fails on an
  empty batch after a non-empty one ('Invalid tensor size'), so `TFLiteModel`
  answers empty batches itself, without the interpreter.

Zero examples are valid everywhere: an empty batch, or items all shorter than
one example, give well-formed empty outputs (the network itself never runs on
an empty batch; see `vggish.model`). NaN or Inf is never embedded: the
SavedModel signatures fail with an InvalidArgumentError that counts the
non-finite values of `waveform` (padding included), `examples` or the
embeddings; the .tflite graph holds no such check (CheckNumerics and Assert are
not TFLite builtins), so `TFLiteModel` checks its numpy inputs and outputs and
raises ValueError; and a model whose weights hold NaN/Inf is not exported.

TF32: neither format can carry TensorFlow's TensorFloat-32 switch, so a process
that runs a SavedModel on an Ampere or later GPU must call
`tf.config.experimental.enable_tensor_float_32_execution(False)` itself to get
float32 embeddings (the export process turns TF32 off; `vggish.device`).

`run_report` measures what each export gives against the Keras float32 model
(fidelity) and how fast it runs (`tools/export_report.py` prints it).
"""

import dataclasses
import functools
import json
import os
import pathlib
import statistics
import subprocess
import tempfile
import time
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

from absl import logging
import numpy as np
import tensorflow as tf

from vggish import frontend as np_frontend
from vggish import mel_features
from vggish import model as vggish_model
from vggish import postprocess
from vggish import tf_frontend
from vggish.params import DEFAULT_PARAMS, Params

PathLike = Union[str, os.PathLike]

SIGNATURE_WAVEFORM = 'embed_waveform'
SIGNATURE_EXAMPLES = 'embed_examples'
SIGNATURES = (SIGNATURE_WAVEFORM, SIGNATURE_EXAMPLES)
FORMATS = ('saved_model', 'tflite')
QUANTIZE_MODES = ('none', 'dynamic')
TFLITE_FILE_NAMES = {'none': 'vggish.tflite', 'dynamic': 'vggish_dynamic.tflite'}
# Why a NaN/Inf check failed, in the error message.
_REFUSED_INPUT = 'VGGish refuses non-finite input'
_OVERFLOW = 'from finite inputs: are they far out of range?'


class ExportError(ValueError):
  """An export was asked for with arguments that cannot work."""


class ExportModule(tf.Module):
  """The two serving signatures around a Keras VGGish, ready to save or convert.

  Attributes:
    embed_waveform: `tf.function` (waveform, lengths) -> dict, see module doc.
    embed_examples: `tf.function` (examples) -> dict, see module doc.
    has_pca: whether the signatures also return `quantized`.
  """

  def __init__(self, model, pca_params=None, params: Params = DEFAULT_PARAMS,
               pca_dtype=tf.float64):
    """Wraps a model.

    Args:
      model: a `vggish.model.VGGish` Keras model (weights loaded).
      pca_params: None (no `quantized` output), a path of
        `vggish_pca_params.npz`, or an (eigen_vectors, means) tuple.
      params: hyperparameters of the frontend and the postprocessor.
      pca_dtype: tf.float64 (exact upstream bytes; SavedModel) or tf.float32
        (TFLite, which has no float64 arithmetic).

    Raises:
      ValueError: bad PCA parameters or dtype.
      ExportError: the model's weights hold NaN or Inf.
    """
    super().__init__(name='vggish_export')
    if pca_dtype not in (tf.float32, tf.float64):
      raise ValueError(f'pca_dtype must be tf.float32 or tf.float64, got {pca_dtype}')
    _check_finite_weights(model)
    self._params = params
    self._model = model
    # Tracking the variables themselves (not only the Keras model) is what lets
    # the TFLite converter freeze them into constants.
    self._variables = [v.value for v in model.variables]
    self._frontend = tf_frontend.LogMelFrontend(params, name='log_mel_frontend')
    self._pca_dtype = pca_dtype
    self._eigen_vectors = None
    self._means = None
    if pca_params is not None:
      processor = postprocess.Postprocessor(pca_params, params)
      self._eigen_vectors = processor.eigen_vectors  # float64 [128, 128]
      self._means = processor.means  # float64 [128, 1]
    self.embed_waveform, self.embed_examples = self._functions(check_finite=True)

  def _functions(self, check_finite: bool):
    """(embed_waveform, embed_examples) `tf.function`s, with or without input checks."""
    p = self._params
    waveform = tf.function(
        functools.partial(self._embed_waveform, check_finite=check_finite),
        input_signature=[
            tf.TensorSpec([None, None], tf.float32, name='waveform'),
            tf.TensorSpec([None], tf.int32, name='lengths'),
        ])
    examples = tf.function(
        functools.partial(self._embed_examples, check_finite=check_finite),
        input_signature=[
            tf.TensorSpec([None, p.example_window_length, p.num_mel_bins], tf.float32,
                          name='examples'),
        ])
    return waveform, examples

  @property
  def has_pca(self) -> bool:
    return self._eigen_vectors is not None

  @property
  def pca_dtype(self) -> tf.DType:
    return self._pca_dtype

  def signatures(self, check_finite: bool = True
                 ) -> Dict[str, tf.types.experimental.ConcreteFunction]:
    """The serving signatures for `tf.saved_model.save`.

    Args:
      check_finite: the signatures refuse NaN/Inf inputs (and outputs) with
        an InvalidArgumentError. The check ops are no TFLite builtins, so the
        TFLite conversion asks for False (`TFLiteModel` checks in numpy).
    """
    if check_finite:
      run_waveform, run_examples = self.embed_waveform, self.embed_examples
    else:
      run_waveform, run_examples = self._functions(check_finite=False)
    waveform = run_waveform.get_concrete_function()
    return {
        SIGNATURE_WAVEFORM: waveform,
        SIGNATURE_EXAMPLES: run_examples.get_concrete_function(),
        tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY: waveform,
    }

  def float_weights(self) -> List[np.ndarray]:
    """Constant matrices that must not be int8-quantized, in TFLite's layout.

    Returns:
      float32 arrays as TFLite's FULLY_CONNECTED stores its weights ([out, in]):
      the mel matrix [64, 257] and, with PCA, the eigen vectors [128, 128].
    """
    arrays = [mel_features.mel_matrix(self._params).astype(np.float32).T]
    if self.has_pca:
      arrays.append(self._eigen_vectors.astype(np.float32))
    return arrays

  def _embed_examples(self, examples, check_finite: bool):
    if check_finite:
      examples = _assert_finite(examples, f'{SIGNATURE_EXAMPLES}, the examples')
    return self._embed(examples, check_finite)

  def _embed(self, examples, check_finite: bool):
    """float32 [n, 96, 64] -> {'embeddings': [n, 128], 'quantized': uint8 [n, 128]}."""
    embeddings = self._model(examples, training=False)  # [n, 128]
    if check_finite:
      # Finite inputs can still overflow (a waveform near float32's limit).
      embeddings = _assert_finite(embeddings, 'the embeddings', _OVERFLOW)
    outputs = {'embeddings': embeddings}
    if self.has_pca:
      outputs['quantized'] = self._postprocess(embeddings)  # [n, 128] uint8
    return outputs

  def _embed_waveform(self, waveform, lengths, check_finite: bool):
    p = self._params
    if check_finite:
      # Padding included: the check does not depend on `lengths`.
      waveform = _assert_finite(waveform, f'{SIGNATURE_WAVEFORM}, the waveform')
    num_samples = tf.shape(waveform)[1]
    lengths = tf.clip_by_value(lengths, 0, num_samples)  # [b]
    # At least one example slot (empty when no item is long enough): TFLite's
    # Python interpreter cannot read back an empty output after a non-empty
    # call ('Invalid tensor size'), and a batch of short clips is common.
    waveform = tf.pad(waveform, [[0, 0], [0, tf.maximum(
        p.min_samples_per_example - num_samples, 0)]])  # [b, max(samples, 15600)]
    examples, num_examples = self._frontend(waveform, lengths)  # [b, m, 96, 64], [b]
    batch, max_examples = tf.shape(examples)[0], tf.shape(examples)[1]
    slots = batch * max_examples
    examples = tf.reshape(
        examples, [slots, p.example_window_length, p.num_mel_bins])  # [b*m, 96, 64]
    # Only the real examples go through the network (a batch of uneven clips
    # would otherwise pay for its padding); the results go back to their slots.
    keep = tf.reshape(tf.sequence_mask(num_examples, max_examples), [slots])  # [b*m]
    index = tf.where(keep)  # [k, 1] int64
    outputs = self._embed(tf.gather_nd(examples, index), check_finite)  # [k, 128]
    result = {'num_examples': num_examples}
    for key, value in outputs.items():
      # One spare row: TFLite's SCATTER_ND kills the process (SIGFPE) on an
      # empty output, which an empty batch would give.
      rows = tf.scatter_nd(index, value, tf.cast(
          tf.stack([slots + 1, p.embedding_size]), tf.int64))  # [b*m + 1, 128]
      result[key] = tf.reshape(
          rows[:slots], [batch, max_examples, p.embedding_size])  # [b, m, 128], zeros elsewhere
    return result

  def _postprocess(self, embeddings):
    """float32 [n, 128] -> uint8 [n, 128], as `vggish.postprocess` (upstream)."""
    p = self._params
    dtype = self._pca_dtype
    x = tf.cast(embeddings, dtype)  # [n, 128]
    eigen_vectors = tf.constant(self._eigen_vectors, dtype)  # [128, 128]
    means = tf.constant(self._means.T, dtype)  # [1, 128]
    # Upstream's (E @ (x.T - means)).T, written row-wise.
    pca = tf.matmul(x - means, eigen_vectors, transpose_b=True)  # [n, 128]
    lo, hi = p.quantize_min_val, p.quantize_max_val
    scaled = (tf.clip_by_value(pca, lo, hi) - lo) * (255.0 / (hi - lo))
    # The cast truncates (the values are >= 0), as upstream's astype(uint8).
    return tf.cast(scaled, tf.uint8)


def _assert_finite(tensor, what: str, why: str = _REFUSED_INPUT):
  """`tensor`, once an assertion has checked that it holds no NaN or Inf.

  Raises (when run):
    tf.errors.InvalidArgumentError: naming `what` and the count of bad values.
  """
  bad = tf.reduce_sum(tf.cast(tf.logical_not(tf.math.is_finite(tensor)), tf.int32))
  check = tf.debugging.Assert(
      tf.equal(bad, 0), [f'{what}: NaN or infinite values:', bad, why])
  with tf.control_dependencies([check]):
    return tf.identity(tensor)


def _check_finite_weights(model) -> None:
  """Raises ExportError naming the variables of `model` that hold NaN or Inf."""
  bad = [f'{v.path} ({int(np.sum(~np.isfinite(v.numpy())))} values)'
         for v in model.variables if not np.all(np.isfinite(v.numpy()))]
  if bad:
    raise ExportError(f'the model\'s weights hold NaN or Inf, so would every '
                      f'embedding: {", ".join(bad)}')


def build_module(checkpoint: PathLike, pca_params=None,
                 params: Params = DEFAULT_PARAMS,
                 pca_dtype=tf.float64) -> ExportModule:
  """Loads a checkpoint into VGGish and wraps it for export.

  Args:
    checkpoint: slim checkpoint (V1/V2) or `.weights.h5` (see `vggish.model`).
    pca_params: None, a path of `vggish_pca_params.npz` or an (eigen_vectors,
      means) tuple.
    params: hyperparameters.
    pca_dtype: see `ExportModule`.

  Returns:
    An `ExportModule`.

  Raises:
    vggish.checkpoint.CheckpointError: unreadable or mismatched checkpoint.
    ValueError: bad PCA parameters.
  """
  model = vggish_model.VGGish(weights=os.fspath(checkpoint), trainable=False,
                              params=params)
  return ExportModule(model, pca_params, params, pca_dtype)


def export_saved_model(module: ExportModule, output_dir: PathLike) -> pathlib.Path:
  """Writes `module` as a SavedModel with its signatures.

  Args:
    module: an `ExportModule` (built with pca_dtype=tf.float64 for exact bytes).
    output_dir: the SavedModel directory (created; files in it are replaced).
      For TF Serving, make it a numbered version folder, e.g. `models/vggish/1`.

  Returns:
    The directory, as a `pathlib.Path`.
  """
  output_dir = _check_output_dir(output_dir)
  tf.saved_model.save(module, os.fspath(output_dir), signatures=module.signatures())
  logging.info('wrote SavedModel %s (signatures %s)', output_dir, ', '.join(SIGNATURES))
  return output_dir


def convert_tflite(module: ExportModule, quantize: str = 'none') -> bytes:
  """Converts `module` to a TFLite flatbuffer with both signatures.

  Args:
    module: an `ExportModule` (pca_dtype=tf.float32: TFLite has no float64).
    quantize: 'none' (float32) or 'dynamic' (dynamic-range int8 weights).

  Returns:
    The .tflite model bytes.

  Raises:
    ExportError: bad `quantize` or a float64 PCA.
  """
  if quantize not in QUANTIZE_MODES:
    raise ExportError(f'quantize must be one of {QUANTIZE_MODES}, got {quantize!r}')
  if module.has_pca and module.pca_dtype != tf.float32:
    raise ExportError('TFLite has no float64 kernels: build the module with '
                      'pca_dtype=tf.float32 for a TFLite export')
  with tempfile.TemporaryDirectory(prefix='vggish_export_') as tmp:
    # Via a SavedModel: it carries the signature names into the .tflite file.
    tf.saved_model.save(module, tmp, signatures=module.signatures(check_finite=False))
    converter = tf.lite.TFLiteConverter.from_saved_model(tmp, signature_keys=list(SIGNATURES))
    # Builtins only: fail loudly rather than silently needing the Flex delegate.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize == 'dynamic':
      converter.optimizations = [tf.lite.Optimize.DEFAULT]
    start = time.monotonic()
    model_bytes = converter.convert()
    logging.info('converted to TFLite (%s) in %.0f s', quantize, time.monotonic() - start)
  if quantize == 'dynamic':
    model_bytes, restored = _restore_float_weights(model_bytes, module.float_weights())
    logging.info('kept %d weight tensors in float32 (mel projection, PCA)', restored)
  return model_bytes


def export_tflite(module: ExportModule, output_dir: PathLike,
                  quantize: str = 'none') -> pathlib.Path:
  """Converts `module` and writes `output_dir/TFLITE_FILE_NAMES[quantize]`.

  Args:
    module: see `convert_tflite`.
    output_dir: directory for the .tflite file (created).
    quantize: 'none' or 'dynamic'.

  Returns:
    The path of the .tflite file.
  """
  model_bytes = convert_tflite(module, quantize)
  output_dir = _check_output_dir(output_dir)
  path = output_dir / TFLITE_FILE_NAMES[quantize]
  tmp = path.with_name(path.name + '.tmp')
  tmp.write_bytes(model_bytes)
  os.replace(tmp, path)  # A reader never sees half a model.
  logging.info('wrote %s (%.1f MB)', path, len(model_bytes) / 1e6)
  return path


def export(output_dir: PathLike, export_format: str, checkpoint: PathLike,
           pca_params: Optional[PathLike] = None, quantize: str = 'none',
           params: Params = DEFAULT_PARAMS) -> pathlib.Path:
  """Builds and writes one export (what `python -m tools.export` runs).

  Args:
    output_dir: SavedModel directory, or directory of the .tflite file.
    export_format: 'saved_model' or 'tflite'.
    checkpoint: VGGish checkpoint.
    pca_params: optional `vggish_pca_params.npz`; adds the `quantized` output.
    quantize: 'none' or, for tflite, 'dynamic'.
    params: hyperparameters.

  Returns:
    The SavedModel directory or the .tflite file.

  Raises:
    ExportError: an impossible combination of arguments.
    vggish.checkpoint.CheckpointError, ValueError: unreadable model files.
  """
  if export_format not in FORMATS:
    raise ExportError(f'format must be one of {FORMATS}, got {export_format!r}')
  if quantize not in QUANTIZE_MODES:
    raise ExportError(f'quantize must be one of {QUANTIZE_MODES}, got {quantize!r}')
  if export_format == 'saved_model' and quantize != 'none':
    raise ExportError('--quantize applies to --format tflite only; a SavedModel '
                      'is exported in float32 (float64 PCA)')
  _check_output_dir(output_dir, create=False)
  if export_format == 'saved_model':
    module = build_module(checkpoint, pca_params, params, pca_dtype=tf.float64)
    return export_saved_model(module, output_dir)
  module = build_module(checkpoint, pca_params, params, pca_dtype=tf.float32)
  return export_tflite(module, output_dir, quantize)


def _check_output_dir(output_dir: PathLike, create: bool = True) -> pathlib.Path:
  path = pathlib.Path(output_dir).expanduser()
  if path.exists() and not path.is_dir():
    raise ExportError(f'--output must be a directory; {path} is a file')
  if create:
    path.mkdir(parents=True, exist_ok=True)
  return path


def _restore_float_weights(model_bytes: bytes,
                           float_weights: Sequence[np.ndarray]) -> Tuple[bytes, int]:
  """Puts float32 weights back in place of their int8 copies in a .tflite model.

  Dynamic-range quantization turns every large constant weight of a dense or
  conv op into int8, with no option to exempt one. Tensors are found by value
  (the int8 copy dequantizes to the float array within half a step), so this
  does not depend on the converter's tensor names. A tensor whose array the
  converter left in float is simply not found.

  Args:
    model_bytes: a dynamic-range quantized .tflite model.
    float_weights: float32 arrays, each in the layout of its tensor.

  Returns:
    (model bytes, number of tensors restored).
  """
  # pylint: disable=g-import-not-at-top
  from tensorflow.lite.python import schema_py_generated as schema
  from tensorflow.lite.tools import flatbuffer_utils
  # pylint: enable=g-import-not-at-top
  model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))
  restored = 0
  for weights in float_weights:
    weights = np.ascontiguousarray(weights, dtype=np.float32)
    buffer_index = None
    for subgraph in model.subgraphs:
      for tensor in subgraph.tensors:
        if not _dequantizes_to(model, tensor, weights, schema):
          continue
        if buffer_index is None:
          buffer = schema.BufferT()
          buffer.data = np.frombuffer(weights.tobytes(), dtype=np.uint8)
          model.buffers.append(buffer)
          buffer_index = len(model.buffers) - 1
        tensor.type = schema.TensorType.FLOAT32
        tensor.quantization = None
        tensor.buffer = buffer_index
        restored += 1
  return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), restored


def _dequantizes_to(model, tensor, weights: np.ndarray, schema) -> bool:
  """Whether `tensor` is an int8 weight that dequantizes to `weights`."""
  if tensor.type != schema.TensorType.INT8 or tensor.quantization is None:
    return False
  if tensor.shape is None or tuple(tensor.shape) != weights.shape:
    return False
  data = model.buffers[tensor.buffer].data
  scale = tensor.quantization.scale
  if data is None or len(data) != weights.size or scale is None:
    return False
  values = np.asarray(data, dtype=np.uint8).view(np.int8).reshape(weights.shape)
  scale = np.asarray(scale, dtype=np.float64)
  if scale.size > 1:  # Per channel along quantizedDimension.
    shape = [1] * weights.ndim
    shape[tensor.quantization.quantizedDimension] = -1
    scale = scale.reshape(shape)
  error = np.abs(values * scale - weights)
  return bool(np.all(error <= 0.5 * scale * (1 + 1e-4) + 1e-12))


def tflite_operators(model: Union[PathLike, bytes]) -> List[str]:
  """The operator kinds a .tflite model uses, e.g. ['CONV_2D', 'RFFT2D', ...].

  Args:
    model: path of a .tflite file, or its bytes.

  Returns:
    Sorted names: builtin operator names, and `custom:NAME` for custom ops
    (a Flex op would show up as `custom:FlexNAME`).
  """
  # pylint: disable=g-import-not-at-top
  from tensorflow.lite.python import schema_py_generated as schema
  # pylint: enable=g-import-not-at-top
  if not isinstance(model, (bytes, bytearray)):
    model = pathlib.Path(model).read_bytes()
  root = schema.Model.GetRootAsModel(model, 0)
  builtin_names = {value: name for name, value in vars(schema.BuiltinOperator).items()
                   if not name.startswith('_')}
  names = set()
  for i in range(root.OperatorCodesLength()):
    code = root.OperatorCodes(i)
    custom = code.CustomCode()
    if custom:
      names.add('custom:' + custom.decode('ascii'))
    else:
      builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
      names.add(builtin_names.get(builtin, str(builtin)))
  return sorted(names)


class TFLiteModel:
  """A .tflite export run through `tf.lite.Interpreter` signature runners.

  The runners resize their inputs on every call, so any batch size and
  waveform length works. An empty batch is answered without the interpreter
  (well-formed empty outputs, as the SavedModel gives), and inputs holding NaN
  or Inf are refused (the .tflite graph has no check of its own).
  """

  def __init__(self, model: Union[PathLike, bytes], num_threads: Optional[int] = None,
               params: Params = DEFAULT_PARAMS):
    """Loads a model.

    Args:
      model: path of a .tflite file, or its bytes.
      num_threads: interpreter threads (None: TFLite's default).
      params: the hyperparameters the model was exported with (output shapes
        of empty batches).
    """
    if isinstance(model, (bytes, bytearray)):
      self._interpreter = tf.lite.Interpreter(model_content=bytes(model),
                                              num_threads=num_threads)
    else:
      self._interpreter = tf.lite.Interpreter(model_path=os.fspath(model),
                                              num_threads=num_threads)
    self._params = params
    self._runners = {name: self._interpreter.get_signature_runner(name)
                     for name in SIGNATURES}
    outputs = self._interpreter.get_signature_list()[SIGNATURE_EXAMPLES]['outputs']
    self.has_pca = 'quantized' in outputs

  def embed_waveform(self, waveform, lengths) -> Dict[str, np.ndarray]:
    """float32 [b, samples], int32 [b] -> dict (see the module docstring).

    Raises:
      ValueError: wrong ranks or batch sizes, or NaN/Inf in `waveform` or in
        the embeddings.
    """
    waveform = np.asarray(waveform, np.float32)
    lengths = np.asarray(lengths, np.int32)
    if waveform.ndim != 2 or lengths.shape != waveform.shape[:1]:
      raise ValueError(f'waveform must be [batch, samples] and lengths [batch], got '
                       f'{waveform.shape} and {lengths.shape}')
    _check_finite_array(waveform, 'the waveform')
    if waveform.shape[0] == 0:
      return self._empty_waveform_outputs(waveform.shape[1])
    outputs = self._runners[SIGNATURE_WAVEFORM](waveform=waveform, lengths=lengths)
    _check_finite_array(outputs['embeddings'], 'the embeddings', _OVERFLOW)
    return outputs

  def embed_examples(self, examples) -> Dict[str, np.ndarray]:
    """float32 [n, 96, 64] -> dict (see the module docstring).

    Raises:
      ValueError: a wrong shape, or NaN/Inf in `examples` or the embeddings.
    """
    p = self._params
    examples = np.asarray(examples, np.float32)
    if examples.shape[1:] != (p.example_window_length, p.num_mel_bins) or examples.ndim != 3:
      raise ValueError(f'examples must be [n, {p.example_window_length}, '
                       f'{p.num_mel_bins}], got {examples.shape}')
    _check_finite_array(examples, 'the examples')
    if examples.shape[0] == 0:
      return self._empty_outputs((0,))
    outputs = self._runners[SIGNATURE_EXAMPLES](examples=examples)
    _check_finite_array(outputs['embeddings'], 'the embeddings', _OVERFLOW)
    return outputs

  def _empty_outputs(self, leading: Tuple[int, ...]) -> Dict[str, np.ndarray]:
    """Zero-row outputs [*leading, 128] (TFLite's interpreter cannot return them)."""
    shape = tuple(leading) + (self._params.embedding_size,)
    outputs = {'embeddings': np.zeros(shape, np.float32)}
    if self.has_pca:
      outputs['quantized'] = np.zeros(shape, np.uint8)
    return outputs

  def _empty_waveform_outputs(self, num_samples: int) -> Dict[str, np.ndarray]:
    """What the SavedModel's embed_waveform gives for a batch of 0 rows of `num_samples`."""
    p = self._params
    # The graph pads rows to one example, so there is always a slot.
    frames = mel_features.num_frames(max(num_samples, p.min_samples_per_example),
                                     p.stft_window_length_samples, p.stft_hop_length_samples)
    max_examples = mel_features.num_frames(frames, p.example_window_length,
                                           p.example_hop_length)
    outputs = self._empty_outputs((0, max_examples))
    outputs['num_examples'] = np.zeros([0], np.int32)
    return outputs


def _check_finite_array(array: np.ndarray, what: str, why: str = _REFUSED_INPUT) -> None:
  """Raises ValueError naming `what` and how many NaN/Inf values it holds."""
  bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
  if bad:
    raise ValueError(f'{what}: {bad} NaN or infinite values; {why}')


def pad_batch(waveforms: Sequence[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
  """Zero-pads mono waveforms to one batch.

  Args:
    waveforms: float arrays [samples_i].

  Returns:
    (float32 [batch, max samples], int32 [batch] lengths).
  """
  lengths = np.array([len(w) for w in waveforms], np.int32)
  batch = np.zeros((len(waveforms), max(lengths, default=0)), np.float32)
  for i, waveform in enumerate(waveforms):
    batch[i, :len(waveform)] = waveform
  return batch, lengths


# ----------------------------------------------------------------------------
# Fidelity and speed report.

@dataclasses.dataclass(frozen=True)
class Fidelity:
  """How far a candidate's outputs are from the reference's.

  Attributes:
    model: candidate name.
    signature: the entry point used.
    inputs: input set name.
    num_examples: embeddings compared.
    max_relative_error: max |candidate - reference| / max |reference|.
    min_cosine: smallest cosine similarity of an embedding pair.
    mean_cosine: mean cosine similarity.
    bytes_exact: fraction of postprocessed bytes equal (None without PCA).
    bytes_within_1: fraction within +-1.
    max_byte_diff: largest byte difference.
  """
  model: str
  signature: str
  inputs: str
  num_examples: int
  max_relative_error: float
  min_cosine: float
  mean_cosine: float
  bytes_exact: Optional[float] = None
  bytes_within_1: Optional[float] = None
  max_byte_diff: Optional[int] = None


def compare(reference: np.ndarray, candidate: np.ndarray,
            reference_bytes: Optional[np.ndarray] = None,
            candidate_bytes: Optional[np.ndarray] = None) -> Dict[str, float]:
  """Fidelity measures of candidate embeddings (and bytes) against a reference.

  Args:
    reference: float [n, 128].
    candidate: float [n, 128].
    reference_bytes, candidate_bytes: optional uint8 [n, 128].

  Returns:
    dict with the `Fidelity` fields from num_examples on.
  """
  reference = np.asarray(reference, np.float64)
  candidate = np.asarray(candidate, np.float64)
  if reference.shape != candidate.shape:
    raise ValueError(f'shapes differ: {reference.shape} vs {candidate.shape}')
  scale = np.abs(reference).max() if reference.size else 1.0
  norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(candidate, axis=1)
  cosine = np.sum(reference * candidate, axis=1) / np.maximum(norms, 1e-30)
  result = {
      'num_examples': int(reference.shape[0]),
      'max_relative_error': float(np.abs(candidate - reference).max() / scale)
                            if reference.size else 0.0,
      'min_cosine': float(cosine.min()) if cosine.size else 1.0,
      'mean_cosine': float(cosine.mean()) if cosine.size else 1.0,
  }
  if reference_bytes is not None and candidate_bytes is not None:
    diff = np.abs(np.asarray(reference_bytes, np.int32) -
                  np.asarray(candidate_bytes, np.int32))
    result['bytes_exact'] = float(np.mean(diff == 0)) if diff.size else 1.0
    result['bytes_within_1'] = float(np.mean(diff <= 1)) if diff.size else 1.0
    result['max_byte_diff'] = int(diff.max()) if diff.size else 0
  return result


def round_to_int8(weights: np.ndarray) -> np.ndarray:
  """Symmetric per-output-channel int8 rounding of a kernel (last axis = output),
  as dynamic-range quantization stores it, returned dequantized (float32)."""
  scale = np.abs(weights).reshape(-1, weights.shape[-1]).max(axis=0) / 127.0
  scale = np.where(scale > 0, scale, 1.0)
  return (np.round(weights / scale) * scale).astype(np.float32)


def weight_rounding_sets(model) -> Dict[str, List[str]]:
  """Each layer with a kernel alone, then all convs, all dense layers, all."""
  names = [layer.name for layer in model.layers
           if getattr(layer, 'kernel', None) is not None]
  sets = {name: [name] for name in names}
  sets['all conv'] = [n for n in names if n.startswith('conv')]
  sets['all fc'] = [n for n in names if n.startswith('fc')]
  sets['all'] = names
  return sets


def weight_rounding_study(model, examples: np.ndarray,
                          processor: 'postprocess.Postprocessor',
                          layer_sets: Mapping[str, Sequence[str]],
                          inputs_name: str = 'examples') -> List[Fidelity]:
  """What int8 weights alone cost: kernels rounded, everything else float32.

  Runs the Keras model with the kernels of each set of layers rounded by
  `round_to_int8` (activations, biases and other layers stay float32), the
  best any dynamic-range quantized model of those layers can do, and compares
  with the float model. The model's weights are restored afterwards.

  Args:
    model: a Keras VGGish.
    examples: float32 [n, 96, 64].
    processor: PCA postprocessor for the byte figures.
    layer_sets: row name -> layer names whose kernels are rounded.
    inputs_name: the `inputs` column of the rows.

  Returns:
    One `Fidelity` per layer set, model 'int8 weights: NAME'.
  """
  reference = model(examples, training=False).numpy()
  reference_bytes = processor.postprocess(reference)
  kernels = {layer.name: layer.kernel.numpy() for layer in model.layers
             if getattr(layer, 'kernel', None) is not None}
  rows = []
  try:
    for name, layers in layer_sets.items():
      unknown = sorted(set(layers) - set(kernels))
      if unknown:
        raise ValueError(f'no layers {unknown} with a kernel; choose from {sorted(kernels)}')
      for layer_name, kernel in kernels.items():
        model.get_layer(layer_name).kernel.assign(
            round_to_int8(kernel) if layer_name in layers else kernel)
      candidate = model(examples, training=False).numpy()
      rows.append(Fidelity(f'int8 weights: {name}', 'weights only', inputs_name,
                           **compare(reference, candidate, reference_bytes,
                                     processor.postprocess(candidate))))
  finally:
    for layer_name, kernel in kernels.items():
      model.get_layer(layer_name).kernel.assign(kernel)
  return rows


@dataclasses.dataclass(frozen=True)
class Speed:
  """Median time of one call on the same inputs as the Keras baseline.

  Attributes:
    model: candidate name.
    signature: the entry point used.
    batch: what one call processes.
    num_examples: examples per call.
    seconds_per_call: median over the rounds.
    examples_per_second: num_examples / seconds_per_call.
    speedup: Keras seconds per call / this model's (medians).
    best_speedup: the same ratio of the fastest rounds (least disturbed by
      other processes on a shared machine).
  """
  model: str
  signature: str
  batch: str
  num_examples: int
  seconds_per_call: float
  examples_per_second: float
  speedup: float
  best_speedup: float


@dataclasses.dataclass
class ExportReport:
  """Fidelity and speed of the exports against the Keras float32 model."""
  fidelity: List[Fidelity]
  speed: List[Speed]
  setup: Dict[str, object]

  def to_dict(self) -> Dict[str, object]:
    return {'setup': self.setup,
            'fidelity': [dataclasses.asdict(f) for f in self.fidelity],
            'speed': [dataclasses.asdict(s) for s in self.speed]}

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), indent=1)

  def table(self) -> str:
    """The report as plain-text tables."""
    lines = [f'{key}: {value}' for key, value in self.setup.items()]
    lines += ['', 'Fidelity against Keras float32 (upstream float64 examples; '
              'bytes: float64 PCA of the Keras embeddings)']
    header = (f'{"model":<24} {"signature":<15} {"inputs":<10} {"n":>4} '
              f'{"max rel err":>11} {"min cos":>9} {"bytes ==":>9} {"+-1":>8} {"max":>4}')
    lines += [header, '-' * len(header)]
    for f in self.fidelity:
      exact = '-' if f.bytes_exact is None else f'{100 * f.bytes_exact:.2f}%'
      within = '-' if f.bytes_within_1 is None else f'{100 * f.bytes_within_1:.2f}%'
      worst = '-' if f.max_byte_diff is None else str(f.max_byte_diff)
      lines.append(f'{f.model:<24} {f.signature:<15} {f.inputs:<10} {f.num_examples:>4} '
                   f'{f.max_relative_error:>11.2e} {f.min_cosine:>9.6f} {exact:>9} '
                   f'{within:>8} {worst:>4}')
    lines += ['', 'Speed (same inputs and threads; median of the rounds, and the '
              'ratio of the fastest rounds)']
    header = (f'{"model":<16} {"signature":<15} {"batch":<18} {"ms/call":>9} '
              f'{"examples/s":>11} {"vs keras":>9} {"best vs keras":>14}')
    lines += [header, '-' * len(header)]
    for s in self.speed:
      lines.append(f'{s.model:<16} {s.signature:<15} {s.batch:<18} '
                   f'{1e3 * s.seconds_per_call:>9.1f} {s.examples_per_second:>11.1f} '
                   f'{s.speedup:>8.2f}x {s.best_speedup:>13.2f}x')
    return '\n'.join(lines)


def generated_waveforms(params: Params = DEFAULT_PARAMS, seed: int = 0) -> Dict[str, np.ndarray]:
  """Seeded test audio at 16 kHz, float64 in [-1, 1]: noise, tones, chirp, bursts.

  Args:
    params: `params.sample_rate` is the rate.
    seed: random seed.

  Returns:
    name -> float64 [samples]; lengths differ (one is shorter than an example).
  """
  rng = np.random.RandomState(seed)
  rate = params.sample_rate

  def t(seconds):
    return np.arange(int(seconds * rate)) / rate

  noise = 0.3 * rng.standard_normal(int(4.2 * rate))
  tones = sum(a * np.sin(2 * np.pi * f * t(7.5) + rng.uniform(0, 2 * np.pi))
              for a, f in ((0.3, 220.0), (0.2, 1250.0), (0.1, 5100.0)))
  sweep = t(6.3)
  chirp = 0.5 * np.sin(2 * np.pi * (100 * sweep + 550 * sweep ** 2))
  bursts = rng.standard_normal(int(10.1 * rate)) * np.repeat(
      rng.uniform(0, 0.8, 101) ** 2, rate // 10 + 1)[:int(10.1 * rate)]
  short = 0.2 * rng.standard_normal(int(0.6 * rate))
  return {'noise_4.2s': noise, 'tones_7.5s': tones, 'chirp_6.3s': chirp,
          'bursts_10.1s': bursts, 'short_0.6s': short}


def golden_inputs(golden_dir: PathLike, params: Params = DEFAULT_PARAMS
                  ) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
  """The golden inputs of tests/golden: name -> (16 kHz waveform, upstream examples).

  Args:
    golden_dir: a folder of `NAME.npz` (with `examples`) and `audio/NAME.wav`
      (or `.npy`, a float64 waveform at 16 kHz).
    params: hyperparameters (target rate).

  Returns:
    name -> (float64 [samples], float64 [n, 96, 64]); empty if the folder has
    none.
  """
  from vggish import audio_io  # pylint: disable=g-import-not-at-top
  golden_dir = pathlib.Path(golden_dir)
  inputs = {}
  for npz in sorted(golden_dir.glob('*.npz')):
    with np.load(npz) as data:
      if 'examples' not in data.files:
        continue
      examples = data['examples']
    audio = golden_dir / 'audio' / (npz.stem + '.wav')
    if audio.exists():
      waveform = audio_io.load_waveform(audio, params)
    elif audio.with_suffix('.npy').exists():
      waveform = np.load(audio.with_suffix('.npy'))
    else:
      continue
    inputs[npz.stem] = (waveform, examples)
  return inputs


def _load_average() -> str:
  try:
    return subprocess.run(['uptime'], capture_output=True, text=True,
                          check=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return ' '.join(f'{x:.2f}' for x in os.getloadavg())


def run_report(checkpoint: PathLike, pca_params: Optional[PathLike],
               work_dir: PathLike, golden_dir: Optional[PathLike] = None,
               num_threads: Optional[int] = None, rounds: int = 7,
               models: Sequence[str] = ('saved_model', 'tflite', 'tflite_dynamic'),
               params: Params = DEFAULT_PARAMS,
               weight_rounding: bool = False) -> ExportReport:
  """Exports, reloads and measures each format against the Keras float32 model.

  Fidelity: reference embeddings are the Keras model's on upstream's float64
  examples (tests/golden's `examples`, or `vggish.frontend` for generated
  audio); reference bytes are `vggish.postprocess` of those (float64 PCA).
  Each export is run through both signatures: `embed_examples` on the same
  examples, `embed_waveform` on the audio (so its figures include the float32
  frontend). The row `keras` runs the Keras model behind `LogMelFrontend`: the
  frontend's own share of the difference.

  Speed: every model runs the same two inputs (a batch of examples, a batch of
  equal-length waveforms) in interleaved rounds, in this one process, TF and
  TFLite with the same thread count; the Keras baseline is the model (behind
  `LogMelFrontend` for waveforms) in a `tf.function`.

  Args:
    checkpoint: VGGish checkpoint.
    pca_params: PCA parameters, or None (no byte figures).
    work_dir: where the exports are written.
    golden_dir: tests/golden-like folder, or None for generated audio only.
    num_threads: TFLite interpreter threads; TensorFlow's must have been set to
      the same before TensorFlow started (tools/export_report.py does).
    rounds: timed calls per model and input.
    models: which of 'saved_model', 'tflite', 'tflite_dynamic' to measure.
    params: hyperparameters.
    weight_rounding: also add the rows of `weight_rounding_study` (each
      layer's kernel alone rounded to int8, then groups of layers; needs PCA
      parameters): what int8 weights cost before any activation is quantized.

  Returns:
    An `ExportReport`.
  """
  unknown = sorted(set(models) - {'saved_model', 'tflite', 'tflite_dynamic'})
  if unknown:
    raise ValueError(f'unknown models {unknown}; choose from saved_model, tflite, '
                     'tflite_dynamic')
  work_dir = pathlib.Path(work_dir)
  setup = {'checkpoint': os.fspath(checkpoint),
           'pca_params': None if pca_params is None else os.fspath(pca_params),
           'threads (TF intra-op, TFLite)': num_threads,
           'load before': _load_average()}
  keras_model = vggish_model.VGGish(weights=os.fspath(checkpoint), trainable=False,
                                    params=params)
  processor = None if pca_params is None else postprocess.Postprocessor(pca_params, params)
  frontend_layer = tf_frontend.LogMelFrontend(params)
  num_frames, num_bands = params.example_window_length, params.num_mel_bins

  @tf.function(input_signature=[tf.TensorSpec([None, num_frames, num_bands], tf.float32)])
  def keras_examples(examples):
    return {'embeddings': keras_model(examples, training=False)}

  @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32),
                                tf.TensorSpec([None], tf.int32)])
  def keras_waveform(waveform, lengths):
    examples, num_examples = frontend_layer(waveform, lengths)  # [b, m, 96, 64]
    shape = tf.shape(examples)
    flat = tf.reshape(examples, [-1, num_frames, num_bands])
    embeddings = keras_model(flat, training=False)
    return {'embeddings': tf.reshape(embeddings, [shape[0], shape[1], -1]),
            'num_examples': num_examples}

  candidates = {'keras': (keras_waveform, keras_examples)}
  start = time.monotonic()
  if 'saved_model' in models:
    module = ExportModule(keras_model, pca_params, params, tf.float64)
    path = export_saved_model(module, work_dir / 'saved_model')
    loaded = tf.saved_model.load(os.fspath(path))
    candidates['saved_model'] = (
        lambda w, l, s=loaded.signatures[SIGNATURE_WAVEFORM]: s(waveform=w, lengths=l),
        lambda x, s=loaded.signatures[SIGNATURE_EXAMPLES]: s(examples=x))
  module = ExportModule(keras_model, pca_params, params, tf.float32)
  for name, quantize in (('tflite', 'none'), ('tflite_dynamic', 'dynamic')):
    if name in models:
      path = export_tflite(module, work_dir, quantize)
      setup[f'{name} size MB'] = round(path.stat().st_size / 1e6, 1)
      runner = TFLiteModel(path, num_threads=num_threads, params=params)
      candidates[name] = (runner.embed_waveform, runner.embed_examples)
  setup['export seconds'] = round(time.monotonic() - start, 1)

  # Inputs: name -> (waveforms, reference examples per waveform).
  input_sets = {}
  if golden_dir is not None:
    golden = golden_inputs(golden_dir, params)
    if golden:
      input_sets['golden'] = ([w for w, _ in golden.values()],
                              [e for _, e in golden.values()])
  generated = list(generated_waveforms(params).values())
  input_sets['generated'] = (generated, [
      np_frontend.waveform_to_examples(w, params.sample_rate, params) for w in generated])

  fidelity = []
  for set_name, (waveforms, examples) in input_sets.items():
    counts = [len(e) for e in examples]
    flat = np.concatenate(examples).astype(np.float32)  # [n, 96, 64]
    reference = keras_examples(flat)['embeddings'].numpy()
    reference_bytes = None if processor is None else processor.postprocess(reference)
    batch, lengths = pad_batch(waveforms)
    for name, (run_waveform, run_examples) in candidates.items():
      for signature, outputs in (
          (SIGNATURE_EXAMPLES, _to_numpy(run_examples(flat))),
          (SIGNATURE_WAVEFORM, _unpad(_to_numpy(run_waveform(batch, lengths)), counts))):
        fidelity.append(Fidelity(model=name, signature=signature, inputs=set_name, **compare(
            reference, outputs['embeddings'], reference_bytes, outputs.get('quantized'))))
    if weight_rounding and processor is not None:
      fidelity += weight_rounding_study(keras_model, flat, processor,
                                        weight_rounding_sets(keras_model), set_name)

  # Speed: the same inputs for every model, timed in interleaved rounds so that
  # a change of machine load hits all of them alike.
  rng = np.random.RandomState(1)
  speed_examples = rng.uniform(-4.6, 3.0, (32, num_frames, num_bands)).astype(np.float32)
  speed_waveform = (0.3 * rng.standard_normal((4, 5 * params.sample_rate))).astype(np.float32)
  speed_lengths = np.full([4], speed_waveform.shape[1], np.int32)
  waveform_examples = 4 * 5
  jobs = {}
  for name, (run_waveform, run_examples) in candidates.items():
    jobs[(name, SIGNATURE_EXAMPLES)] = (lambda f=run_examples: f(speed_examples), 32,
                                        '32 examples')
    jobs[(name, SIGNATURE_EXAMPLES, 1)] = (lambda f=run_examples: f(speed_examples[:1]), 1,
                                           '1 example')
    jobs[(name, SIGNATURE_WAVEFORM)] = (
        lambda f=run_waveform: f(speed_waveform, speed_lengths), waveform_examples,
        '4 x 5 s waveforms')
  times = {key: [] for key in jobs}
  for job, _, _ in jobs.values():
    _to_numpy(job())  # Warm-up: tracing, allocation, XNNPACK packing.
  for _ in range(rounds):
    for key, (job, _, _) in jobs.items():
      start = time.perf_counter()
      _to_numpy(job())
      times[key].append(time.perf_counter() - start)
  speed = []
  for key, (_, count, batch_name) in jobs.items():
    name, signature = key[:2]
    baseline_key = ('keras',) + key[1:]
    seconds = statistics.median(times[key])
    baseline = statistics.median(times[baseline_key])
    best = min(times[baseline_key]) / min(times[key])
    speed.append(Speed(model=name, signature=signature, batch=batch_name,
                       num_examples=count, seconds_per_call=seconds,
                       examples_per_second=count / seconds, speedup=baseline / seconds,
                       best_speedup=best))
  speed.sort(key=lambda s: (s.signature, s.num_examples, s.model))
  setup['load after'] = _load_average()
  return ExportReport(fidelity=fidelity, speed=speed, setup=setup)


def _to_numpy(outputs: Mapping[str, object]) -> Dict[str, np.ndarray]:
  return {key: np.asarray(value) for key, value in outputs.items()}


def _unpad(outputs: Mapping[str, np.ndarray], counts: Sequence[int]) -> Dict[str, np.ndarray]:
  """[b, m, ...] outputs of embed_waveform -> the valid rows, concatenated."""
  num_examples = outputs['num_examples']
  if list(num_examples) != list(counts):
    raise AssertionError(f'num_examples {list(num_examples)} != expected {list(counts)}')
  result = {}
  for key in ('embeddings', 'quantized'):
    if key in outputs:
      rows = [outputs[key][i, :n] for i, n in enumerate(counts)]
      result[key] = np.concatenate(rows) if rows else outputs[key][:0, 0]
  return result
