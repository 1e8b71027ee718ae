"""The zero-copy V1 checkpoint reader against TensorFlow's, and the model it builds."""

import numpy as np
import pytest

from vggish import checkpoint
from vggish import checkpoint_v1
from vggish import model as vggish_model
from vggish import slim_compat


def test_arrays_equal_tensorflows_reader(recipe_checkpoint, recipe_weights):
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  reader = tf.train.load_checkpoint(str(recipe_checkpoint))
  with checkpoint_v1.open_checkpoint(str(recipe_checkpoint)) as (tensors, arrays):
    assert sorted(arrays) == sorted(checkpoint.SLIM_VARIABLES)
    for name, shape in checkpoint.SLIM_VARIABLES.items():
      assert tensors[name].shape == shape and tensors[name].dtype == 1
      assert arrays[name].dtype == np.float32
      # Tolerance: none, the bytes of the file.
      np.testing.assert_array_equal(arrays[name], reader.get_tensor(name), err_msg=name)
      np.testing.assert_array_equal(arrays[name], recipe_weights[name], err_msg=name)


def test_other_dtypes_are_listed_not_read(recipe_weights, tmp_path):
  variables = {'vggish/conv1/biases': recipe_weights['vggish/conv1/biases'],
               'global_step': np.array(7, np.int64)}
  path = slim_compat.write_slim_checkpoint(variables, tmp_path / 'small.ckpt', version=1)
  with checkpoint_v1.open_checkpoint(path) as (tensors, arrays):
    assert tensors['global_step'].shape == () and tensors['global_step'].dtype == 9
    assert list(arrays) == ['vggish/conv1/biases']
    np.testing.assert_array_equal(arrays['vggish/conv1/biases'],
                                  recipe_weights['vggish/conv1/biases'])


@pytest.mark.parametrize('content', [b'', b'x' * 100, b'\0' * 4096])
def test_non_checkpoints_are_unsupported(tmp_path, content):
  path = tmp_path / 'bad.ckpt'
  path.write_bytes(content)
  with pytest.raises(checkpoint_v1.UnsupportedCheckpoint):
    with checkpoint_v1.open_checkpoint(str(path)):
      pass


def test_truncated_file_is_unsupported_then_tensorflow_explains(recipe_checkpoint, tmp_path):
  path = tmp_path / 'cut.ckpt'
  data = recipe_checkpoint.read_bytes()
  path.write_bytes(data[:len(data) // 2] + data[-48:])  # Footer kept, blocks gone.
  with pytest.raises(checkpoint_v1.UnsupportedCheckpoint):
    with checkpoint_v1.open_checkpoint(str(path)):
      pass
  with pytest.raises(checkpoint.CheckpointError):
    checkpoint.read_slim_checkpoint(path)


def test_model_built_from_the_mapped_file_owns_trainable_weights(recipe_checkpoint,
                                                                 recipe_weights):
  model = vggish_model.VGGish(weights=str(recipe_checkpoint), trainable=True)
  for name, (layer, weight) in checkpoint.SLIM_TO_KERAS.items():
    value = getattr(model.get_layer(layer), weight).numpy()
    np.testing.assert_array_equal(value, recipe_weights[name], err_msg=name)
  kernel = model.get_layer('fc1_1').kernel
  kernel.assign_add(np.ones(kernel.shape, np.float32))  # As training would.
  np.testing.assert_array_equal(kernel.numpy(),
                                recipe_weights['vggish/fc1/fc1_1/weights'] + 1)
  # The file is untouched, and the layers keep serializable initializers.
  again = checkpoint.read_slim_checkpoint(recipe_checkpoint)
  np.testing.assert_array_equal(again['vggish/fc1/fc1_1/weights'],
                                recipe_weights['vggish/fc1/fc1_1/weights'])
  assert model.get_layer('fc1_1').get_config()['kernel_initializer']['class_name'] == 'Zeros'
