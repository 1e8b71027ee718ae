"""Tests of vggish.model: structure, argument checks, output and trainability.

Golden parity of the loaded model is in test_checkpoint.py; these tests reuse conftest's
session-scoped `recipe_model` instead of building more 72 M-parameter models.
"""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import load_golden
from vggish import checkpoint
from vggish import model as vggish_model
from vggish.params import DEFAULT_PARAMS

LAYER_NAMES = ['input_features', 'pad_empty_batch', 'reshape', 'conv1', 'pool1', 'conv2', 'pool2', 'conv3_1',
               'conv3_2', 'pool3', 'conv4_1', 'conv4_2', 'pool4', 'flatten', 'fc1_1', 'fc1_2',
               'fc2', 'embedding']
# Sum over SLIM_VARIABLES of prod(shape): the spec's "about 72 M parameters".
NUM_PARAMETERS = 72_141_184


def test_layer_names_and_shapes(recipe_model):
  assert recipe_model.name == 'vggish'
  assert [layer.name for layer in recipe_model.layers] == LAYER_NAMES
  assert recipe_model.inputs[0].name == 'input_features'
  assert recipe_model.output_names == ['embedding']
  assert tuple(recipe_model.input_shape) == (None, 96, 64)
  assert tuple(recipe_model.output_shape) == (None, 128)
  assert tuple(recipe_model.get_layer('pool4').output.shape) == (None, 6, 4, 512)
  assert tuple(recipe_model.get_layer('flatten').output.shape) == (None, 12288)


def test_parameter_count_matches_checkpoint(recipe_model):
  assert recipe_model.count_params() == NUM_PARAMETERS
  for name, (layer, weight) in checkpoint.SLIM_TO_KERAS.items():
    variable = getattr(recipe_model.get_layer(layer), weight)
    assert tuple(variable.shape) == checkpoint.SLIM_VARIABLES[name], name


def test_output_is_pre_activation(recipe_model):
  examples = load_golden('sine_1khz_16k_3s')['examples'].astype(np.float32)
  embedding = np.asarray(recipe_model(examples, training=False))
  assert embedding.shape == (3, 128)
  # A final ReLU (a known bug of other ports) would make every value >= 0.
  assert (embedding < 0).mean() > 0.2
  # Only fc1_1 and fc1_2 carry a ReLU; fc2 is linear.
  assert recipe_model.get_layer('fc2').activation.__name__ == 'linear'
  assert recipe_model.get_layer('fc1_2').activation.__name__ == 'relu'


def test_batch_of_one_and_empty_batch(recipe_model):
  rng = np.random.default_rng(0)
  examples = rng.normal(size=(2, 96, 64)).astype(np.float32)
  both = np.asarray(recipe_model(examples, training=False))
  one = np.asarray(recipe_model(examples[1:], training=False))
  assert one.shape == (1, 128)  # Not squeezed.
  np.testing.assert_allclose(one[0], both[1], rtol=1e-5, atol=1e-5 * np.abs(both).max())
  # Clips shorter than 0.975 s give zero examples upstream; the model must accept that.
  empty = np.asarray(recipe_model(examples[:0], training=False))
  assert empty.shape == (0, 128) and empty.dtype == np.float32


def test_empty_batch_never_reaches_the_conv_stack(recipe_model):
  """oneDNN's Conv2D mis-shapes an empty batch: the model pads it to one zero example."""
  examples = np.zeros((0, 96, 64), np.float32)
  conv1_input = keras.Model(recipe_model.input, recipe_model.get_layer('conv1').input)
  assert np.asarray(conv1_input(examples)).shape == (1, 96, 64, 1)
  # A non-empty batch passes unchanged (same values, no padding).
  rng = np.random.default_rng(1)
  batch = rng.normal(size=(3, 96, 64)).astype(np.float32)
  np.testing.assert_array_equal(np.asarray(conv1_input(batch))[..., 0], batch)
  # Traced once with an unknown batch, the same graph serves 0, 1 and 5 examples.
  run = tf.function(lambda x: recipe_model(x, training=False),
                    input_signature=[tf.TensorSpec([None, 96, 64], tf.float32)])
  for n in (0, 1, 5, 0):
    assert tuple(run(np.zeros((n, 96, 64), np.float32)).shape) == (n, 128)
  assert run.experimental_get_tracing_count() == 1


def test_guard_layers_survive_keras_serialization(tmp_path):
  params = dataclasses.replace(DEFAULT_PARAMS, example_window_seconds=0.16, num_mel_bins=16,
                               embedding_size=32)
  model = vggish_model.VGGish(params=params)
  path = tmp_path / 'small.keras'
  model.save(path)
  reloaded = keras.models.load_model(path)
  x = np.random.default_rng(2).normal(size=(2, 16, 16)).astype(np.float32)
  np.testing.assert_allclose(np.asarray(reloaded(x)), np.asarray(model(x)), rtol=1e-6)
  assert np.asarray(reloaded(x[:0])).shape == (0, 32)


@pytest.fixture
def restore_tf32():
  before = tf.config.experimental.tensor_float_32_execution_enabled()
  yield
  tf.config.experimental.enable_tensor_float_32_execution(before)


def test_building_the_model_switches_tf32_off(restore_tf32):
  params = dataclasses.replace(DEFAULT_PARAMS, example_window_seconds=0.16, num_mel_bins=16,
                               embedding_size=32)
  tf.config.experimental.enable_tensor_float_32_execution(True)
  vggish_model.VGGish(params=params)
  assert not tf.config.experimental.tensor_float_32_execution_enabled()
  vggish_model.VGGish(params=params, allow_tf32=True)
  assert tf.config.experimental.tensor_float_32_execution_enabled()
  with pytest.raises(ValueError, match='allow_tf32 must be a bool'):
    vggish_model.VGGish(params=params, allow_tf32='no')


def test_trainable_switch(recipe_model, recipe_checkpoint):
  assert len(recipe_model.trainable_weights) == 18
  frozen = vggish_model.VGGish(weights=recipe_checkpoint, trainable=False, name='frozen')
  assert frozen.name == 'frozen'
  assert frozen.trainable_weights == []
  assert len(frozen.non_trainable_weights) == 18
  assert frozen.count_params() == NUM_PARAMETERS


def test_random_init_with_small_params():
  # 16 frames x 16 bands keeps fc1_1 small; initialization follows upstream's training
  # defaults: truncated N(0, 0.01) kernels (|w| <= 2 stddev), zero biases.
  params = dataclasses.replace(DEFAULT_PARAMS, example_window_seconds=0.16, num_mel_bins=16,
                               embedding_size=32)
  model = vggish_model.VGGish(params=params)
  assert tuple(model.input_shape) == (None, 16, 16)
  assert tuple(model.output_shape) == (None, 32)
  assert tuple(model.get_layer('flatten').output.shape) == (None, 512)
  kernel = np.asarray(model.get_layer('fc1_2').kernel)
  assert abs(kernel.std() - 0.0088) < 0.0005  # Truncation at 2 sigma shrinks the std.
  assert np.abs(kernel).max() <= 2 * DEFAULT_PARAMS.init_stddev
  for layer in ('conv1', 'fc1_1', 'fc2'):
    assert not np.any(np.asarray(model.get_layer(layer).bias))


@pytest.mark.parametrize('kwargs, message', [
    (dict(weights=123), 'weights must be None or a path'),
    (dict(trainable='no'), 'trainable must be a bool'),
    (dict(name=''), 'name must be a non-empty string'),
    (dict(params={'num_mel_bins': 64}), 'params must be a vggish.Params'),
    (dict(weights='x.ckpt', params=dataclasses.replace(DEFAULT_PARAMS, num_mel_bins=32)),
     r'Pretrained weights need \[96, 64\] inputs'),
])
def test_argument_validation(kwargs, message):
  with pytest.raises(ValueError, match=message):
    vggish_model.VGGish(**kwargs)


def test_architecture_table_matches_name_map():
  weighted = [s.name for s in vggish_model.ARCHITECTURE if s.kind in ('conv', 'fc')]
  assert weighted == list(dict.fromkeys(layer for layer, _ in checkpoint.SLIM_TO_KERAS.values()))
