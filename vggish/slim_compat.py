"""TF1-style (graph mode, tf_slim) VGGish for code written against upstream's API.

This is the only module of the project that uses `tf.compat.v1`. It offers:
- `define_vggish_slim`: the network in a `tf.Graph`, with the released
  checkpoint's variable names, input placeholder `vggish/input_features` and
  output tensor `vggish/embedding`;
- `load_vggish_slim_checkpoint`: restores a checkpoint into a session;
- `write_slim_checkpoint`: writes numpy arrays as a TF1 V1 or V2 checkpoint
  (tests use it to build checkpoints like the released one);
- `compute_embeddings_slim`: a one-call graph-mode run, for cross-checks.

New code should use the Keras model in `vggish.model`.
"""

import contextlib
import os
import warnings
from typing import Mapping, Union

from absl import logging
import numpy as np
import tensorflow as tf
import tf_slim as slim

from tensorflow.core.protobuf import saver_pb2
from vggish import checkpoint
from vggish import model as vggish_model
from vggish.params import DEFAULT_PARAMS, Params

_tf1 = tf.compat.v1

INPUT_TENSOR_NAME = 'vggish/input_features:0'
OUTPUT_TENSOR_NAME = 'vggish/embedding:0'

# Keras layer name -> variable scope inside `vggish/` (e.g. conv3_1 ->
# conv3/conv3_1), taken from the one checkpoint name map.
_SCOPES = {layer: name[len(checkpoint.SCOPE):].rsplit('/', 1)[0]
           for name, (layer, _) in checkpoint.SLIM_TO_KERAS.items()}


def define_vggish_slim(features_tensor=None, training: bool = False,
                       params: Params = DEFAULT_PARAMS):
  """Adds VGGish to the current default graph (call inside `tf.Graph()`).

  Args:
    features_tensor: optional float32 [batch, 96, 64] input; None creates the
      placeholder `vggish/input_features`.
    training: whether the variables are trainable (upstream's meaning).
    params: hyperparameters (input and embedding sizes, init stddev).

  Returns:
    The `vggish/embedding` tensor, float32 [batch, 128], pre-activation fc2.
  """
  if tf.executing_eagerly():
    raise ValueError('define_vggish_slim builds a TF1 graph: call it inside '
                     '`with tf.Graph().as_default():`.')
  with warnings.catch_warnings():
    # tf_slim calls deprecated tf.layers internals; users cannot act on that.
    warnings.filterwarnings('ignore', message='.*is deprecated',
                            category=UserWarning)
    return _define(features_tensor, training, params)


def _define(features_tensor, training: bool, params: Params):
  num_frames = params.example_window_length
  num_bands = params.num_mel_bins
  init = _tf1.truncated_normal_initializer(stddev=params.init_stddev)
  with slim.arg_scope([slim.conv2d, slim.fully_connected],
                      weights_initializer=init,
                      biases_initializer=_tf1.zeros_initializer(),
                      activation_fn=tf.nn.relu, trainable=training), \
       slim.arg_scope([slim.conv2d], kernel_size=3, stride=1, padding='SAME'), \
       slim.arg_scope([slim.max_pool2d], kernel_size=2, stride=2,
                      padding='SAME'), \
       _tf1.variable_scope('vggish'):
    if features_tensor is None:
      features_tensor = _tf1.placeholder(
          tf.float32, shape=(None, num_frames, num_bands),
          name='input_features')
    net = tf.reshape(features_tensor, [-1, num_frames, num_bands, 1])
    for spec in vggish_model.ARCHITECTURE:
      if spec.kind == 'conv':
        net = slim.conv2d(net, spec.size, scope=_SCOPES[spec.name])
      elif spec.kind == 'pool':
        net = slim.max_pool2d(net, scope=spec.name)
      elif spec.kind == 'flatten':
        net = slim.flatten(net)  # NHWC row-major, like the Keras model.
      else:
        net = slim.fully_connected(
            net, spec.size or params.embedding_size,
            activation_fn=tf.nn.relu if spec.relu else None,
            scope=_SCOPES[spec.name])
    return tf.identity(net, name='embedding')


def load_vggish_slim_checkpoint(session, path) -> None:
  """Restores a VGGish checkpoint (V1 or V2) into a session's graph.

  Args:
    session: a `tf.compat.v1.Session` whose graph holds `define_vggish_slim`.
    path: see `vggish.checkpoint.resolve_slim_checkpoint`.

  Raises:
    vggish.checkpoint.CheckpointError: the checkpoint is missing, unreadable
      or does not hold VGGish's variables.
    ValueError: the graph has no VGGish variables.
  """
  resolved, _ = checkpoint.inspect_slim_checkpoint(path)
  var_list = {v.op.name: v
              for v in session.graph.get_collection(
                  _tf1.GraphKeys.GLOBAL_VARIABLES)
              if v.op.name in checkpoint.SLIM_VARIABLES}
  missing = sorted(set(checkpoint.SLIM_VARIABLES) - set(var_list))
  if missing:
    raise ValueError(f'The session graph lacks VGGish variables {missing}; '
                     f'call define_vggish_slim() in it first.')
  _tf1.train.Saver(var_list).restore(session, resolved)
  logging.info('Restored VGGish from %s.', resolved)


def write_slim_checkpoint(variables: Mapping[str, np.ndarray],
                          path: Union[str, os.PathLike],
                          version: int = 1) -> str:
  """Writes named arrays as a TF1 checkpoint.

  Args:
    variables: checkpoint variable name -> array (any TF dtype; the names and
      shapes are written as given, so tests can also write bad checkpoints).
    path: the V1 file, or the V2 prefix (`<path>.index` + `<path>.data-*`).
    version: 1 (one file, the format of the released `vggish_model.ckpt`) or
      2.

  Returns:
    The path written, as a string.
  """
  if version not in (1, 2):
    raise ValueError(f'version must be 1 or 2, got {version!r}')
  if not variables:
    raise ValueError('variables is empty: nothing to write')
  path = os.fspath(path)
  write_version = (saver_pb2.SaverDef.V1 if version == 1
                   else saver_pb2.SaverDef.V2)
  with tf.Graph().as_default():
    var_list, feeds = {}, {}
    for i, (name, value) in enumerate(variables.items()):
      value = np.asarray(value)
      # Initial values are fed rather than baked into the graph as constants:
      # the fc1_1 weights alone are 200 MB.
      placeholder = _tf1.placeholder(tf.as_dtype(value.dtype), value.shape)
      var_list[name] = _tf1.Variable(placeholder, name=f'var{i}')
      feeds[placeholder] = value
    saver = _tf1.train.Saver(var_list, write_version=write_version)
    with _tf1.Session() as session:
      session.run([v.initializer for v in var_list.values()], feed_dict=feeds)
      written = saver.save(session, path, write_meta_graph=False,
                           write_state=False)
  logging.info('Wrote %d variables to V%d checkpoint %s.', len(variables),
               version, written)
  return written


@contextlib.contextmanager
def slim_session(checkpoint_path, params: Params = DEFAULT_PARAMS):
  """Upstream's way to run VGGish: a TF1 session with the slim graph restored.

  Yields:
    A function: float [n, 96, 64] log-mel examples -> float32 [n, 128]
    pre-activation embeddings (one `session.run` per call).
  """
  with tf.Graph().as_default() as graph:
    define_vggish_slim(training=False, params=params)
    with _tf1.Session(graph=graph) as session:
      load_vggish_slim_checkpoint(session, checkpoint_path)
      inputs = graph.get_tensor_by_name(INPUT_TENSOR_NAME)
      outputs = graph.get_tensor_by_name(OUTPUT_TENSOR_NAME)
      yield lambda examples: session.run(
          outputs, feed_dict={inputs: np.asarray(examples, dtype=np.float32)})


def compute_embeddings_slim(examples: np.ndarray, checkpoint_path,
                            params: Params = DEFAULT_PARAMS) -> np.ndarray:
  """Runs the graph-mode VGGish on examples, loading a checkpoint.

  Args:
    examples: float [n, 96, 64] log-mel examples.
    checkpoint_path: see `vggish.checkpoint.resolve_slim_checkpoint`.
    params: hyperparameters.

  Returns:
    float32 [n, 128] pre-activation embeddings.
  """
  with slim_session(checkpoint_path, params) as embed:
    return embed(examples)
