"""Where the released model files live, and what they must look like.

One function, `checkpoint_dir()`, decides where `vggish_model.ckpt` and
`vggish_pca_params.npz` are looked for and downloaded to:

1. `$VGGISH_CHECKPOINT_DIR` when it is set;
2. the repository's `checkpoints/` folder when the package runs from a clone
   (found relative to this file, never the working directory);
3. `~/.cache/vggish` otherwise (an installed package).

`MODEL_FILES` records each file's official URL, byte size and SHA-256, so a
download can be verified before it is used.
"""

import dataclasses
import os
import pathlib
import types
from typing import Optional, Union

CHECKPOINT_DIR_ENV = 'VGGISH_CHECKPOINT_DIR'
BASE_URL = 'https://storage.googleapis.com/audioset'
DOWNLOAD_COMMAND = 'python -m tools.download'

CHECKPOINT_NAME = 'vggish_model.ckpt'
PCA_PARAMS_NAME = 'vggish_pca_params.npz'

# This file is <root>/vggish/workspace.py; a clone has <root>/checkpoints/ and
# <root>/setup.cfg beside the package, an installed package (site-packages)
# has neither.
_REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent


@dataclasses.dataclass(frozen=True)
class ModelFile:
  """A released file the model needs.

  Attributes:
    name: file name inside the checkpoint directory.
    url: official download URL.
    size: size in bytes, or None when unknown.
    sha256: lowercase hex SHA-256 of the content, or None when unknown.
    description: what the file is, for messages.
  """
  name: str
  url: str
  size: Optional[int]
  sha256: Optional[str]
  description: str


# The checkpoint's SHA-256 and size are not published by the VGGish release;
# they are those of the file as mirrored publicly (a Git LFS pointer giving
# both, and two projects pinning the same SHA-256 next to the PCA file's
# official hash). Its MD5, d1c7011e6366aa34176bb05c705e31a8, pinned by
# cosmir/openmic-2018 together with the PCA file's MD5, is a cross-check
# (checkpoints/README.md).
CHECKPOINT_FILE = ModelFile(
    name=CHECKPOINT_NAME,
    url=f'{BASE_URL}/{CHECKPOINT_NAME}',
    size=291_108_469,
    sha256='0962b1914e3e053922d957c45bc84a78c985765641dc6bceeeb3a7d8dfecfdf6',
    description='VGGish checkpoint')

PCA_PARAMS_FILE = ModelFile(
    name=PCA_PARAMS_NAME,
    url=f'{BASE_URL}/{PCA_PARAMS_NAME}',
    size=73_020,
    sha256='4d878af3e306defbfb37095365aa7e5a6cecb86bad13e859e626151c4e6a8b9d',
    description='VGGish PCA parameters')

# Read-only so that no caller can change what every other caller verifies.
# The small PCA file comes first, so a download run gets it even when the
# 291 MB checkpoint then fails.
MODEL_FILES = types.MappingProxyType({
    PCA_PARAMS_FILE.name: PCA_PARAMS_FILE,
    CHECKPOINT_FILE.name: CHECKPOINT_FILE,
})


class MissingModelFileError(FileNotFoundError):
  """A model file is missing; the message says how to download it."""


def _running_from_clone() -> bool:
  return ((_REPO_ROOT / 'checkpoints').is_dir() and
          (_REPO_ROOT / 'setup.cfg').is_file())


def checkpoint_dir() -> pathlib.Path:
  """The directory that holds (or will hold) the downloaded model files.

  Returns:
    `$VGGISH_CHECKPOINT_DIR` (with `~` expanded) when set and non-empty, else
    the clone's `checkpoints/` folder when the package runs from a clone, else
    `~/.cache/vggish`. The directory is not created here.
  """
  override = os.environ.get(CHECKPOINT_DIR_ENV, '').strip()
  if override:
    return pathlib.Path(override).expanduser()
  if _running_from_clone():
    return _REPO_ROOT / 'checkpoints'
  return pathlib.Path.home() / '.cache' / 'vggish'


def default_checkpoint_path() -> pathlib.Path:
  """Path of `vggish_model.ckpt` in `checkpoint_dir()` (may not exist)."""
  return checkpoint_dir() / CHECKPOINT_NAME


def default_pca_params_path() -> pathlib.Path:
  """Path of `vggish_pca_params.npz` in `checkpoint_dir()` (may not exist)."""
  return checkpoint_dir() / PCA_PARAMS_NAME


def _exists(path: pathlib.Path) -> bool:
  # A V2 checkpoint is named by its prefix: `model.ckpt` stands for
  # `model.ckpt.index` + `model.ckpt.data-*`.
  return path.exists() or path.with_name(path.name + '.index').exists()


def missing_file_message(path: Union[str, os.PathLike],
                         description: str = 'model file') -> str:
  """One line saying that `path` is missing and how to download it."""
  path = pathlib.Path(path)
  command = DOWNLOAD_COMMAND
  if path.parent.resolve() != checkpoint_dir().resolve():
    command += f' --dest {path.parent}'
  return (f'{description} not found at {path}; download the model files with '
          f'`{command}` (or set ${CHECKPOINT_DIR_ENV} to the folder that '
          f'holds them)')


def require_model_file(path: Union[str, os.PathLike, None],
                       default_name: str = CHECKPOINT_NAME) -> pathlib.Path:
  """Resolves a model file path and checks that it exists.

  Args:
    path: an explicit path, or None for `checkpoint_dir() / default_name`.
    default_name: the file name used when `path` is None; also selects the
      description used in the error message.

  Returns:
    The path, as a `pathlib.Path`.

  Raises:
    MissingModelFileError: the file (or, for a V2 checkpoint prefix, its
      `.index` file) does not exist. The message names `python -m
      tools.download`.
  """
  path = checkpoint_dir() / default_name if path is None else pathlib.Path(
      path).expanduser()
  if not _exists(path):
    known = MODEL_FILES.get(default_name)
    description = known.description if known else 'model file'
    raise MissingModelFileError(missing_file_message(path, description))
  return path
