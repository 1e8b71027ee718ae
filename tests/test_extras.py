"""Tests of vggish.extras.require: the clear error, and logging left as found."""

import logging
import sys
import threading

import pytest

from vggish import extras


def test_a_missing_extra_names_what_to_install(monkeypatch):
  monkeypatch.setitem(sys.modules, 'vggish_test_missing_package', None)
  with pytest.raises(extras.MissingExtraError,
                     match=r'the feature needs the optional package .vggish_test_missing_package'
                           r'.* pip install -e "\.\[some_extra\]"'):
    extras.require('vggish_test_missing_package', 'some_extra', 'the feature')
  assert logging.root.manager.disable == logging.NOTSET


def test_an_imported_module_is_returned_without_touching_logging(monkeypatch):
  def refuse(level):
    raise AssertionError(f'logging.disable({level}) called')

  monkeypatch.setattr(extras.logging, 'disable', refuse)
  assert extras.require('json', 'none', 'the feature') is sys.modules['json']


def test_concurrent_first_imports_leave_logging_enabled(monkeypatch):
  """Two threads importing at once must restore logging in the right order.

  Thread A's import waits (up to 0.5 s) for thread B's to start; B's import
  waits until A has returned. Unserialized, B saved the level A had disabled
  and restored it last, leaving every WARNING and INFO record dropped.
  """
  a_inside, b_inside, a_done = threading.Event(), threading.Event(), threading.Event()
  real_import = extras.importlib.import_module

  def fake_import(name):
    if name == 'vggish_test_a':
      a_inside.set()
      b_inside.wait(0.5)
    elif name == 'vggish_test_b':
      b_inside.set()
      a_done.wait(5)
    else:
      return real_import(name)
    return name

  monkeypatch.setattr(extras.importlib, 'import_module', fake_import)
  assert logging.root.manager.disable == logging.NOTSET
  thread_a = threading.Thread(target=extras.require, args=('vggish_test_a', 'x', 'A'))
  thread_b = threading.Thread(target=extras.require, args=('vggish_test_b', 'x', 'B'))
  thread_a.start()
  assert a_inside.wait(5)
  thread_b.start()
  thread_a.join(5)
  a_done.set()
  thread_b.join(5)
  assert not thread_a.is_alive() and not thread_b.is_alive()
  assert logging.root.manager.disable == logging.NOTSET
