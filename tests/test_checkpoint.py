"""Tests of vggish.checkpoint: slim V1/V2 and .weights.h5 into Keras, and its errors.

Golden parity: the recipe weights (conftest), written as a checkpoint, loaded through the
project's loader into the Keras model, must reproduce the original code's embeddings of the
golden examples.
"""

import logging

import numpy as np
import pytest

from conftest import GOLDEN_NAMES, load_golden
from vggish import checkpoint
from vggish import model as vggish_model
from vggish import slim_compat

# tests/golden/README.md: max |diff| / max |embedding| from the same examples.
RELATIVE_TOLERANCE = 1e-5

_IGNORED_EXTRAS = {
    'global_step': np.array(1234, np.int64),
    'vggish/conv1/weights/Adam': np.zeros((3, 3, 1, 64), np.float32),
    'beta1_power': np.array(0.9, np.float32),
    'mymodel/fc/weights': np.ones((128, 10), np.float32),
}


def golden_batch():
  """All golden examples (float32) and embeddings, of the inputs that have examples."""
  examples, embeddings = [], []
  for name in GOLDEN_NAMES:
    golden = load_golden(name)
    if len(golden['examples']):
      examples.append(golden['examples'].astype(np.float32))
      embeddings.append(golden['embedding'])
  assert len(examples) >= 5  # Every golden input but the 0.5 s one.
  return np.concatenate(examples), np.concatenate(embeddings)


def relative_error(actual, expected):
  return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


def assert_golden_parity(model):
  examples, expected = golden_batch()
  actual = np.asarray(model(examples, training=False))
  assert actual.shape == expected.shape == (22, 128)
  error = relative_error(actual, expected)
  assert error < RELATIVE_TOLERANCE, f'relative error {error:.3g}'
  return error


@pytest.fixture(scope='module')
def v2_prefix(recipe_weights, tmp_path_factory):
  """The recipe as a V2 checkpoint, with optimizer state and another scope beside it."""
  prefix = tmp_path_factory.mktemp('v2') / 'vggish_v2.ckpt'
  slim_compat.write_slim_checkpoint(
      dict(recipe_weights, **_IGNORED_EXTRAS), str(prefix), version=2)
  return prefix


def test_v1_checkpoint_matches_golden(recipe_model):
  assert_golden_parity(recipe_model)


def test_v2_checkpoint_with_extras_matches_golden(v2_prefix):
  # Given with its .index suffix, as users often do.
  model = vggish_model.VGGish(weights=str(v2_prefix) + '.index')
  assert_golden_parity(model)


def test_weights_h5_round_trip_matches_golden(recipe_model, tmp_path):
  path = tmp_path / 'sub' / 'vggish.weights.h5'
  checkpoint.save_weights(recipe_model, path)
  # The constructor zero-initializes when given weights, so a load that silently did
  # nothing would give zero embeddings, not golden ones.
  assert_golden_parity(vggish_model.VGGish(weights=path))


def test_read_slim_checkpoint_is_exact(recipe_checkpoint, recipe_weights):
  variables = checkpoint.read_slim_checkpoint(recipe_checkpoint)
  assert list(variables) == list(checkpoint.SLIM_VARIABLES)
  for name, value in variables.items():
    assert value.dtype == np.float32
    np.testing.assert_array_equal(value, recipe_weights[name], err_msg=name)


def test_name_map_covers_every_variable_once():
  assert list(checkpoint.SLIM_TO_KERAS) == list(checkpoint.SLIM_VARIABLES)
  targets = list(checkpoint.SLIM_TO_KERAS.values())
  assert len(set(targets)) == len(targets) == 18
  assert checkpoint.SLIM_TO_KERAS['vggish/conv3/conv3_1/weights'] == ('conv3_1', 'kernel')
  assert checkpoint.SLIM_TO_KERAS['vggish/fc2/biases'] == ('fc2', 'bias')
  total = sum(int(np.prod(s)) for s in checkpoint.SLIM_VARIABLES.values())
  assert total == 72_141_184


def test_resolve_accepts_prefix_suffixes_and_directory(v2_prefix, recipe_checkpoint):
  prefix = str(v2_prefix)
  assert checkpoint.resolve_slim_checkpoint(prefix) == prefix
  assert checkpoint.resolve_slim_checkpoint(prefix + '.index') == prefix
  assert checkpoint.resolve_slim_checkpoint(prefix + '.data-00000-of-00001') == prefix
  assert checkpoint.resolve_slim_checkpoint(v2_prefix.parent) == prefix
  assert checkpoint.resolve_slim_checkpoint(recipe_checkpoint) == str(recipe_checkpoint)
  assert checkpoint.resolve_slim_checkpoint(recipe_checkpoint.parent) == str(recipe_checkpoint)


def test_directory_without_single_checkpoint(tmp_path):
  with pytest.raises(checkpoint.CheckpointError, match='found none'):
    checkpoint.resolve_slim_checkpoint(tmp_path)
  (tmp_path / 'a.ckpt').write_bytes(b'x')
  (tmp_path / 'b.index').write_bytes(b'x')
  with pytest.raises(checkpoint.CheckpointError, match='a.ckpt, b'):
    checkpoint.resolve_slim_checkpoint(tmp_path)


def _full_shape_map():
  return {name: list(shape) for name, shape in checkpoint.SLIM_VARIABLES.items()}


def test_validate_accepts_ignored_extras():
  shapes = _full_shape_map()
  shapes.update({name: list(np.shape(v)) for name, v in _IGNORED_EXTRAS.items()})
  shapes['vggish/fc2/weights/ExponentialMovingAverage'] = [4096, 128]
  checkpoint.validate_slim_variables(shapes)  # No error.


@pytest.mark.parametrize('change, expected_message', [
    (lambda s: s.pop('vggish/conv2/biases'), 'missing: vggish/conv2/biases'),
    (lambda s: s.update({'vggish/fc2/weights': [128, 4096]}),
     'wrong shape: vggish/fc2/weights expected [4096, 128], got [128, 4096]'),
])
def test_validate_rejects_each_kind_of_problem(change, expected_message):
  shapes = _full_shape_map()
  change(shapes)
  with pytest.raises(checkpoint.CheckpointError, match='1 problem') as info:
    checkpoint.validate_slim_variables(shapes)
  assert expected_message in str(info.value)


def test_validate_warns_about_unknown_variables_in_scope(caplog):
  # The released file is ~2.5 MB larger than its 18 variables need; whatever
  # it also holds must not stop it loading while every weight is exact.
  shapes = _full_shape_map()
  shapes['vggish/conv5/weights'] = [3, 3, 512, 512]
  with caplog.at_level(logging.WARNING):
    checkpoint.validate_slim_variables(shapes, source='Checkpoint x')
  assert 'vggish/conv5/weights (shape [3, 3, 512, 512])' in caplog.text
  assert 'ignored' in caplog.text


def test_validate_rejects_non_float():
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  dtypes = {name: tf.float32 for name in checkpoint.SLIM_VARIABLES}
  dtypes['vggish/conv1/biases'] = tf.int32
  with pytest.raises(checkpoint.CheckpointError, match='wrong dtype: vggish/conv1/biases'):
    checkpoint.validate_slim_variables(_full_shape_map(), dtypes)


def test_bad_checkpoint_file_names_all_problems(recipe_weights, tmp_path):
  variables = {
      'vggish/conv1/weights': recipe_weights['vggish/conv1/weights'],
      'vggish/conv1/biases': np.zeros(65, np.float32),  # Mis-shaped.
      'vggish/conv5/weights': np.zeros((3, 3, 2, 2), np.float32),  # Unexpected.
      **_IGNORED_EXTRAS,
  }
  path = slim_compat.write_slim_checkpoint(variables, tmp_path / 'bad.ckpt', version=1)
  with pytest.raises(checkpoint.CheckpointError) as info:
    checkpoint.read_slim_checkpoint(path)
  message = str(info.value)
  assert '17 problem(s)' in message  # 16 missing, 1 mis-shaped.
  for name in list(checkpoint.SLIM_VARIABLES)[2:]:
    assert f'missing: {name} ' in message
  assert 'wrong shape: vggish/conv1/biases expected [64], got [65]' in message
  assert 'does not use:\n  vggish/conv5/weights (shape [3, 3, 2, 2])' in message
  for ignored in _IGNORED_EXTRAS:
    assert ignored not in message


def test_constructor_rejects_bad_checkpoint_before_building(tmp_path):
  path = tmp_path / 'missing.ckpt'
  with pytest.raises(checkpoint.CheckpointError, match='No checkpoint found'):
    vggish_model.VGGish(weights=path)
  with pytest.raises(checkpoint.CheckpointError, match='No Keras weights file'):
    vggish_model.VGGish(weights=tmp_path / 'missing.weights.h5')


def test_nonexistent_path_is_a_value_error(tmp_path):
  path = str(tmp_path / 'nowhere' / 'vggish_model.ckpt')
  with pytest.raises(ValueError, match='No checkpoint found.*nowhere'):
    checkpoint.read_slim_checkpoint(path)
  with pytest.raises(checkpoint.CheckpointError, match='No Keras weights file'):
    checkpoint.load_weights(None, tmp_path / 'missing.weights.h5')


def test_garbage_file(tmp_path):
  path = tmp_path / 'vggish_model.ckpt'
  path.write_bytes(b'<html>403 Forbidden</html>' * 10)
  with pytest.raises(checkpoint.CheckpointError, match='not a readable TensorFlow checkpoint'):
    checkpoint.read_slim_checkpoint(path)


def test_truncated_v1_download(recipe_checkpoint, tmp_path):
  path = tmp_path / 'vggish_model.ckpt'
  with open(recipe_checkpoint, 'rb') as src, open(path, 'wb') as dst:
    dst.write(src.read(1 << 20))  # The first MiB of a 289 MB file.
  with pytest.raises(checkpoint.CheckpointError, match='truncated or corrupt'):
    checkpoint.read_slim_checkpoint(path)


def test_truncated_v2_data_file(recipe_weights, tmp_path, monkeypatch):
  # A V2 index opens and validates even when its data file is cut short; the tensor read
  # must then fail loudly. A one-variable "model" keeps the file small.
  name = 'vggish/conv2/weights'
  monkeypatch.setattr(checkpoint, 'SLIM_VARIABLES', {name: (3, 3, 64, 128)})
  prefix = tmp_path / 'small'
  slim_compat.write_slim_checkpoint({name: recipe_weights[name]}, prefix, version=2)
  with open(str(prefix) + '.data-00000-of-00001', 'r+b') as f:
    f.truncate(1000)
  with pytest.raises(checkpoint.CheckpointError, match=f'Cannot read {name}.*truncated'):
    checkpoint.read_slim_checkpoint(prefix)


def test_save_weights_requires_suffix(recipe_model, tmp_path):
  with pytest.raises(ValueError, match=r'\.weights\.h5'):
    checkpoint.save_weights(recipe_model, tmp_path / 'vggish.h5')


def test_assign_into_wrong_model(recipe_weights):
  import keras  # pylint: disable=import-outside-toplevel
  other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name='dense')])
  with pytest.raises(ValueError, match="no layer 'conv1'"):
    checkpoint.assign_slim_variables(other, recipe_weights)
