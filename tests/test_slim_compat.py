"""Tests of vggish.slim_compat: the TF1 graph, its checkpoint restore, and the writer."""

import pathlib
import re

import numpy as np
import pytest
import tensorflow as tf

from conftest import GOLDEN_NAMES, load_golden
from vggish import checkpoint
from vggish import slim_compat

# tests/golden/README.md: max |diff| / max |embedding| from the same examples.
RELATIVE_TOLERANCE = 1e-5


def _golden_batch():
  pairs = [load_golden(name) for name in GOLDEN_NAMES]
  pairs = [g for g in pairs if len(g['examples'])]
  return (np.concatenate([g['examples'] for g in pairs]).astype(np.float32),
          np.concatenate([g['embedding'] for g in pairs]))


def _relative_error(actual, expected):
  return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


def test_slim_matches_golden_and_keras(recipe_checkpoint, recipe_model):
  examples, golden = _golden_batch()
  slim_embedding = slim_compat.compute_embeddings_slim(examples, recipe_checkpoint)
  assert slim_embedding.shape == golden.shape == (22, 128)
  assert _relative_error(slim_embedding, golden) < RELATIVE_TOLERANCE
  keras_embedding = np.asarray(recipe_model(examples, training=False))
  assert _relative_error(slim_embedding, keras_embedding) < RELATIVE_TOLERANCE


@pytest.mark.parametrize('training', [False, True])
def test_graph_names_and_variables(training):
  with tf.Graph().as_default() as graph:
    embedding = slim_compat.define_vggish_slim(training=training)
    assert embedding.name == slim_compat.OUTPUT_TENSOR_NAME == 'vggish/embedding:0'
    assert embedding.shape.as_list() == [None, 128]
    features = graph.get_tensor_by_name(slim_compat.INPUT_TENSOR_NAME)
    assert features.op.type == 'Placeholder'
    assert features.shape.as_list() == [None, 96, 64]
    variables = tf.compat.v1.global_variables()
    assert {v.op.name: tuple(v.shape.as_list()) for v in variables} == checkpoint.SLIM_VARIABLES
    assert [v.op.name for v in variables] == list(checkpoint.SLIM_VARIABLES)
    assert len(tf.compat.v1.trainable_variables()) == (18 if training else 0)
    # The embedding is fc2's pre-activation: its producer is BiasAdd, not Relu.
    assert embedding.op.inputs[0].op.type == 'BiasAdd'


def test_define_needs_graph_mode():
  with pytest.raises(ValueError, match='tf.Graph'):
    slim_compat.define_vggish_slim()


def test_load_errors(tmp_path):
  bad = slim_compat.write_slim_checkpoint(
      {'vggish/conv1/weights': np.zeros((3, 3, 1, 64), np.float32)}, tmp_path / 'bad.ckpt')
  with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
    slim_compat.define_vggish_slim()
    with pytest.raises(checkpoint.CheckpointError, match='17 problem'):
      slim_compat.load_vggish_slim_checkpoint(session, bad)
    with pytest.raises(checkpoint.CheckpointError, match='No checkpoint found'):
      slim_compat.load_vggish_slim_checkpoint(session, tmp_path / 'missing.ckpt')


def test_load_into_graph_without_vggish(recipe_checkpoint):
  with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
    with pytest.raises(ValueError, match='call define_vggish_slim'):
      slim_compat.load_vggish_slim_checkpoint(session, recipe_checkpoint)


@pytest.mark.parametrize('version, files', [(1, ['c.ckpt']),
                                            (2, ['c.ckpt.data-00000-of-00001', 'c.ckpt.index'])])
def test_write_round_trip(tmp_path, version, files):
  rng = np.random.default_rng(7)
  variables = {
      'vggish/conv1/weights': rng.normal(size=(3, 3, 1, 64)).astype(np.float32),
      'vggish/conv1/biases': rng.normal(size=64).astype(np.float32),
      'global_step': np.array(42, np.int64),
  }
  written = slim_compat.write_slim_checkpoint(variables, tmp_path / 'c.ckpt', version=version)
  assert written == str(tmp_path / 'c.ckpt')
  assert sorted(p.name for p in tmp_path.iterdir()) == files
  reader = tf.train.load_checkpoint(written)
  assert set(reader.get_variable_to_shape_map()) == set(variables)
  for name, value in variables.items():
    np.testing.assert_array_equal(reader.get_tensor(name), value)
    assert reader.get_tensor(name).dtype == value.dtype


def test_write_rejects_bad_arguments(tmp_path):
  with pytest.raises(ValueError, match='version must be 1 or 2'):
    slim_compat.write_slim_checkpoint({'a': np.zeros(1)}, tmp_path / 'a', version=3)
  with pytest.raises(ValueError, match='empty'):
    slim_compat.write_slim_checkpoint({}, tmp_path / 'a')


def test_only_slim_compat_uses_tf1_api():
  package = pathlib.Path(slim_compat.__file__).parent
  offenders = [p.name for p in sorted(package.glob('*.py'))
               if p.name != 'slim_compat.py'
               and re.search(r'compat\.v1|tf_slim', p.read_text())]
  assert offenders == []
