"""Tests of vggish.device: the TF32 switch is applied, and logged once when a GPU is visible."""

import pytest
import tensorflow as tf

from vggish import device


@pytest.fixture(autouse=True)
def restore_tf32():
  before = tf.config.experimental.tensor_float_32_execution_enabled()
  yield
  tf.config.experimental.enable_tensor_float_32_execution(before)


def test_configure_tf32_sets_the_switch_and_returns_the_previous_one():
  tf.config.experimental.enable_tensor_float_32_execution(True)
  assert device.configure_tf32() is True
  assert not tf.config.experimental.tensor_float_32_execution_enabled()
  assert device.configure_tf32(allow=True) is False
  assert tf.config.experimental.tensor_float_32_execution_enabled()
  with pytest.raises(ValueError, match='allow must be a bool'):
    device.configure_tf32(1)


def test_logs_once_per_choice_when_a_gpu_is_visible(monkeypatch):
  messages = []
  monkeypatch.setattr(device.logging, 'info', lambda msg, *args: messages.append(msg % args))
  monkeypatch.setattr(device.tf.config, 'list_physical_devices',
                      lambda kind=None: ['GPU:0'] if kind == 'GPU' else [])
  device._log_choice.cache_clear()  # pylint: disable=protected-access
  for _ in range(3):
    device.configure_tf32(False)
  device.configure_tf32(True)
  assert len(messages) == 2
  assert messages[0].startswith('TensorFloat-32 off on 1 GPU(s)')
  assert messages[1].startswith('TensorFloat-32 allowed on 1 GPU(s)')
  device._log_choice.cache_clear()  # pylint: disable=protected-access


def test_no_message_without_a_gpu(monkeypatch):
  messages = []
  monkeypatch.setattr(device.logging, 'info', lambda msg, *args: messages.append(msg))
  monkeypatch.setattr(device.tf.config, 'list_physical_devices', lambda kind=None: [])
  device._log_choice.cache_clear()  # pylint: disable=protected-access
  device.configure_tf32(False)
  assert not messages
