"""Tests for vggish.workspace: where the model files live, and their pins."""

import hashlib
import pathlib
import re

import pytest

from conftest import shared_real_path
from vggish import workspace

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def no_override(monkeypatch):
  monkeypatch.delenv(workspace.CHECKPOINT_DIR_ENV, raising=False)


def test_env_variable_overrides(monkeypatch, tmp_path):
  monkeypatch.setenv(workspace.CHECKPOINT_DIR_ENV, str(tmp_path / 'models'))
  assert workspace.checkpoint_dir() == tmp_path / 'models'
  assert workspace.default_checkpoint_path() == (
      tmp_path / 'models' / 'vggish_model.ckpt')
  assert workspace.default_pca_params_path() == (
      tmp_path / 'models' / 'vggish_pca_params.npz')


def test_env_variable_expands_home(monkeypatch, tmp_path):
  monkeypatch.setenv('HOME', str(tmp_path))
  monkeypatch.setenv(workspace.CHECKPOINT_DIR_ENV, '~/vggish')
  assert workspace.checkpoint_dir() == tmp_path / 'vggish'


def test_empty_env_variable_is_ignored(monkeypatch):
  monkeypatch.setenv(workspace.CHECKPOINT_DIR_ENV, '')
  assert workspace.checkpoint_dir() == REPO_ROOT / 'checkpoints'


def test_clone_uses_its_checkpoints_folder_whatever_the_cwd(monkeypatch,
                                                            tmp_path):
  monkeypatch.chdir(tmp_path)
  assert workspace.checkpoint_dir() == REPO_ROOT / 'checkpoints'


def test_installed_package_uses_user_cache(monkeypatch, tmp_path):
  # An installed package: no checkpoints/ or setup.cfg beside vggish/.
  monkeypatch.setattr(workspace, '_REPO_ROOT', tmp_path / 'site-packages')
  monkeypatch.setenv('HOME', str(tmp_path / 'home'))
  assert workspace.checkpoint_dir() == (
      tmp_path / 'home' / '.cache' / 'vggish')


def test_model_files_are_pinned_and_read_only():
  assert list(workspace.MODEL_FILES) == ['vggish_pca_params.npz',
                                         'vggish_model.ckpt']
  for name, model_file in workspace.MODEL_FILES.items():
    assert model_file.name == name
    assert model_file.url == f'https://storage.googleapis.com/audioset/{name}'
    assert re.fullmatch('[0-9a-f]{64}', model_file.sha256)
    assert model_file.size > 0
  with pytest.raises(TypeError):
    workspace.MODEL_FILES['other'] = None


def test_pca_pin_matches_the_released_file():
  path = shared_real_path('vggish_pca_params.npz')
  pca = workspace.MODEL_FILES['vggish_pca_params.npz']
  assert path.stat().st_size == pca.size
  assert hashlib.sha256(path.read_bytes()).hexdigest() == pca.sha256


def test_missing_default_file_names_download_command(monkeypatch, tmp_path):
  monkeypatch.setenv(workspace.CHECKPOINT_DIR_ENV, str(tmp_path))
  with pytest.raises(workspace.MissingModelFileError) as info:
    workspace.require_model_file(None)
  assert isinstance(info.value, FileNotFoundError)
  message = str(info.value)
  assert message.startswith('VGGish checkpoint not found at ')
  assert str(tmp_path / 'vggish_model.ckpt') in message
  assert '`python -m tools.download`' in message
  assert '\n' not in message


def test_missing_file_elsewhere_suggests_dest(monkeypatch, tmp_path):
  monkeypatch.setenv(workspace.CHECKPOINT_DIR_ENV, str(tmp_path / 'default'))
  path = tmp_path / 'mine' / 'pca.npz'
  with pytest.raises(workspace.MissingModelFileError) as info:
    workspace.require_model_file(path, workspace.PCA_PARAMS_NAME)
  message = str(info.value)
  assert message.startswith(f'VGGish PCA parameters not found at {path}')
  assert f'`python -m tools.download --dest {path.parent}`' in message


def test_require_model_file_accepts_file_and_v2_prefix(monkeypatch, tmp_path):
  monkeypatch.setenv(workspace.CHECKPOINT_DIR_ENV, str(tmp_path))
  (tmp_path / 'vggish_model.ckpt').write_bytes(b'')
  assert workspace.require_model_file(None) == tmp_path / 'vggish_model.ckpt'
  (tmp_path / 'v2.ckpt.index').write_bytes(b'')
  assert workspace.require_model_file(str(tmp_path / 'v2.ckpt')) == (
      tmp_path / 'v2.ckpt')


def test_downloaded_files_are_git_ignored():
  gitignore = (REPO_ROOT / '.gitignore').read_text()
  assert 'checkpoints/*' in gitignore.splitlines()
  assert '!checkpoints/README.md' in gitignore.splitlines()
