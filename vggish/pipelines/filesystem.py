"""Paths anywhere Apache Beam's `FileSystems` reaches, for the Beam pipeline.

Local paths, `gs://` (with `apache-beam[gcp]`), `s3://` (`apache-beam[aws]`),
`hdfs://`, `azfs://`: the Beam front door reads its inputs, model files, label
map and output directory only through this module, so that a corpus in a
bucket and a job on Dataflow work like a local run.

- `BeamFiles`: the `vggish.files.LocalFiles` methods (CSV lists, label maps)
  over `FileSystems`.
- `discover_inputs(args)`: files, folders (prefixes) and globs, with the ids
  `vggish.corpus.discover_inputs` gives local paths.
- `local_copy(path)`: a local file with a remote file's bytes, for
  libsndfile and TensorFlow's checkpoint reader (a local path is used as is).
- `read_bytes`, `write_atomic`, `list_names`, `delete`, `makedirs`.
"""

import contextlib
import logging
import os
import posixpath
import shutil
import tempfile
import uuid
from typing import BinaryIO, Callable, Iterator, List, Optional, Sequence

from vggish import audio_io
from vggish import corpus
from vggish import extras
from vggish import files as files_lib
from vggish import manifest as manifest_lib
from vggish import workspace
from vggish.files import has_scheme

_CHUNK = 1 << 20


def _beam_filesystems():
  extras.require('apache_beam', 'beam', 'The Beam pipeline (tools.extract_beam)')
  from apache_beam.io import filesystem  # pylint: disable=import-outside-toplevel
  from apache_beam.io import filesystems  # pylint: disable=import-outside-toplevel
  return filesystems.FileSystems, filesystem.CompressionTypes.UNCOMPRESSED


def join(base: str, *parts: str) -> str:
  """`base/part/...` in the path's own filesystem."""
  if not has_scheme(base):
    return os.path.join(base, *parts)
  return posixpath.join(base, *parts)


def split(path: str):
  """(directory, name) of a path."""
  if not has_scheme(path):
    return os.path.split(path)
  head, _, name = path.rstrip('/').rpartition('/')
  return head, name


def exists(path: str) -> bool:
  """Whether a file (or local directory) is there."""
  file_systems, _ = _beam_filesystems()
  return file_systems.exists(path)


def _match(pattern: str, limit: Optional[int] = None) -> List[str]:
  file_systems, _ = _beam_filesystems()
  result = file_systems.match([pattern], limits=[limit] if limit else None)
  return sorted(metadata.path for metadata in result[0].metadata_list)


def isdir(path: str) -> bool:
  """A local directory, or a remote prefix that holds some file."""
  if not has_scheme(path):
    return os.path.isdir(path)
  return bool(_match(path.rstrip('/') + '/**', limit=1))


def read_bytes(path: str) -> bytes:
  """The whole content of a file."""
  file_systems, uncompressed = _beam_filesystems()
  with file_systems.open(path, compression_type=uncompressed) as f:
    return f.read()


def write_atomic(path: str, data: bytes) -> None:
  """Writes `path` so that it appears only complete (temporary name, then rename).

  Raises:
    vggish.manifest.OutputWriteError: the file cannot be written.
  """
  _create_atomic(path, lambda f: f.write(data))


def copy_into(local_path: str, path: str) -> None:
  """Uploads a local file to `path` atomically (see `write_atomic`)."""
  def copy(dst):
    with open(local_path, 'rb') as src:
      shutil.copyfileobj(src, dst, _CHUNK)
  _create_atomic(path, copy)


def _create_atomic(path: str, write: Callable[[BinaryIO], None]) -> None:
  file_systems, uncompressed = _beam_filesystems()
  tmp = f'{path}.tmp-{uuid.uuid4().hex[:12]}'
  try:
    with file_systems.create(tmp, compression_type=uncompressed) as f:
      write(f)
    file_systems.rename([tmp], [path])
  except OSError as e:
    try:
      file_systems.delete([tmp])
    except OSError:
      pass
    raise _write_error(e, path) from e


def rename(source: str, destination: str) -> None:
  """Moves a file (a local rename; a copy and delete on object stores).

  Raises:
    vggish.manifest.OutputWriteError: the move failed.
  """
  if not has_scheme(source) and not has_scheme(destination):
    try:
      os.replace(source, destination)
    except OSError as e:
      raise manifest_lib.OutputWriteError.from_os_error(e, destination) from e
    return
  file_systems, _ = _beam_filesystems()
  try:
    file_systems.rename([source], [destination])
  except OSError as e:
    raise _write_error(e, destination) from e


@contextlib.contextmanager
def atomic_local_write(path: str) -> Iterator[str]:
  """A local path to write; on success its file becomes `path` atomically.

  For TensorFlow's writers (`tf.io.TFRecordWriter`), which write local files:
  a local `path` gets a temporary file beside it, renamed into place; a remote
  one a temporary local file, uploaded with `copy_into`. On an error the
  temporary file is removed and nothing appears at `path`.
  """
  if has_scheme(path):
    fd, tmp = tempfile.mkstemp(prefix='vggish-', suffix='.part')
    os.close(fd)
  else:
    tmp = f'{path}.tmp-{uuid.uuid4().hex[:12]}'
  try:
    yield tmp
    if has_scheme(path):
      copy_into(tmp, path)
    else:
      rename(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def _write_error(error: OSError, path: str) -> manifest_lib.OutputWriteError:
  if isinstance(error, manifest_lib.OutputWriteError):
    return error
  # BeamIOError keeps the underlying errors per path; a full disk is found there.
  details = getattr(error, 'exception_details', None) or {}
  for cause in details.values():
    if isinstance(cause, OSError) and cause.errno is not None:
      return manifest_lib.OutputWriteError.from_os_error(cause, path)
  if error.errno is not None:
    return manifest_lib.OutputWriteError.from_os_error(error, path)
  return manifest_lib.OutputWriteError(path, ' '.join(str(error).split()))


def makedirs(path: str) -> None:
  """Creates a local directory (remote prefixes need no creating)."""
  if has_scheme(path):
    return
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    raise manifest_lib.OutputWriteError.from_os_error(e, path) from e


def list_names(directory: str) -> List[str]:
  """Names of the files directly in `directory` (empty when it is not there)."""
  if not has_scheme(directory):
    return sorted(os.listdir(directory)) if os.path.isdir(directory) else []
  prefix = directory.rstrip('/') + '/'
  return [path[len(prefix):] for path in _match(prefix + '*')
          if '/' not in path[len(prefix):]]


def delete(paths: Sequence[str]) -> None:
  """Deletes files (best effort: missing ones are ignored)."""
  if not paths:
    return
  file_systems, _ = _beam_filesystems()
  try:
    file_systems.delete(list(paths))
  except OSError as e:
    logging.warning('could not delete %d file(s): %s', len(paths), e)


@contextlib.contextmanager
def local_copy(path: str) -> Iterator[str]:
  """A local file with the bytes of `path` (a local path is yielded as is).

  Raises:
    vggish.audio_io.AudioReadError: the remote file is missing or unreadable
      (the input's failure, with the remote path in the message).
  """
  if not has_scheme(path):
    yield path
    return
  file_systems, uncompressed = _beam_filesystems()
  fd, tmp = tempfile.mkstemp(prefix='vggish-', suffix=posixpath.splitext(path)[1])
  try:
    try:
      with os.fdopen(fd, 'wb') as dst, file_systems.open(
          path, compression_type=uncompressed) as src:
        shutil.copyfileobj(src, dst, _CHUNK)
    except OSError as e:
      if not file_systems.exists(path):
        raise audio_io.AudioReadError(
            f'{path}: no such file or directory; check the path') from e
      raise audio_io.AudioReadError(
          f'{path}: cannot be read ({" ".join(str(e).split())})') from e
    yield tmp
  finally:
    os.remove(tmp)


def local_model_file(path: str, directory: str) -> str:
  """A local copy of a model file (with a V2 checkpoint's `.index`/`.data-*` files).

  Args:
    path: a checkpoint (`vggish_model.ckpt`, a V2 prefix, `.weights.h5`) or the
      PCA `.npz`; a local path is returned as is.
    directory: a local directory to copy into.

  Raises:
    ValueError: nothing is found at `path`.
  """
  if not has_scheme(path):
    return path
  found = _model_file_parts(path)
  if not found:
    raise ValueError(f'model file {path!r} does not exist')
  file_systems, uncompressed = _beam_filesystems()
  for remote in found:
    local = os.path.join(directory, split(remote)[1])
    with file_systems.open(remote, compression_type=uncompressed) as src, \
        open(local, 'wb') as dst:
      shutil.copyfileobj(src, dst, _CHUNK)
  return os.path.join(directory, split(path)[1])


def check_model_file(path: Optional[str], default_name: str) -> str:
  """A model file's path (absolute when local), checked to exist.

  Raises:
    vggish.workspace.MissingModelFileError: a local file is missing.
    ValueError: a remote file is missing.
  """
  if path is not None and has_scheme(str(path)):
    if not _model_file_parts(str(path)):
      raise ValueError(f'model file {path} does not exist')
    return str(path)
  return os.path.abspath(workspace.require_model_file(path, default_name))


def _model_file_parts(path: str) -> List[str]:
  """The remote files of a model file: itself, or a V2 checkpoint's `.index`/`.data-*`."""
  return [p for p in _match(path + '*') if p == path or p.startswith(path + '.')]


class BeamFiles(files_lib.LocalFiles):
  """`vggish.files.LocalFiles` over Beam's `FileSystems`: local or remote paths."""

  def join(self, base: str, *parts: str) -> str:
    return join(base, *parts)

  def dirname(self, path: str) -> str:
    return split(path)[0]

  def exists(self, path: str) -> bool:
    return exists(path)

  def isfile(self, path: str) -> bool:
    if not has_scheme(path):
      return os.path.isfile(path)
    return exists(path)

  def isdir(self, path: str) -> bool:
    return isdir(path)

  def read_text(self, path: str) -> str:
    return read_bytes(path).decode('utf-8')

  def write_text(self, path: str, text: str) -> None:
    write_atomic(path, text.encode('utf-8'))

  def why_not_a_file(self, path: str) -> Optional[str]:
    # A remote file is checked when a worker reads it: asking the object store
    # about each of a million rows up front would take longer than the job.
    return None if has_scheme(path) else audio_io.why_not_a_file(path)


BEAM_FILES = BeamFiles()


def discover_inputs(args: Sequence[str],
                    extensions=audio_io.AUDIO_EXTENSIONS) -> List[corpus.AudioInput]:
  """`vggish.corpus.discover_inputs` for local and remote arguments alike.

  Local arguments go to `vggish.corpus.discover_inputs` (same ids, same
  checks). A remote argument is a glob (`gs://b/audio/**/*.wav`), a folder
  (`gs://b/audio/`, or any prefix that holds files) searched recursively for
  `extensions`, or a file (taken whatever its extension); ids follow the same
  rules: the path relative to the folder (or to the glob's part without
  wildcards), without its extension.

  Raises:
    ValueError: a glob or folder matches nothing, nothing exists, or two
      different files get the same id.
  """
  local = [arg for arg in args if not has_scheme(arg)]
  found: List[corpus.AudioInput] = []
  extensions = corpus.normalized_extensions(extensions)
  for arg in args:
    if not has_scheme(arg):
      if arg is local[0]:  # All local arguments at once, in their place.
        found.extend(corpus.discover_inputs(local, extensions))
      continue
    if corpus.is_glob(arg):
      base = _remote_glob_base(arg)
      paths = [p for p in _match(arg) if corpus.has_audio_extension(p, extensions)]
      if not paths:
        raise ValueError(f'the pattern {arg!r} matches no audio file')
    elif arg.endswith('/') or not exists(arg):
      base = arg.rstrip('/')
      paths = [p for p in _match(base + '/**')
               if corpus.has_audio_extension(p, extensions)]
      if not paths:
        if arg.endswith('/'):
          raise ValueError(f'{arg!r} holds no audio file')
        found.append(corpus.AudioInput(
            video_id=corpus.id_from_relative(split(arg)[1]), path=arg,
            error=f'{arg}: no such file or directory; check the path'))
        continue
    else:
      found.append(corpus.AudioInput(
          video_id=corpus.id_from_relative(split(arg)[1]), path=arg))
      continue
    found.extend(
        corpus.AudioInput(video_id=corpus.id_from_relative(p[len(base) + 1:]), path=p)
        for p in paths)
  corpus.check_some_exist(found)
  return corpus.unique_ids(found)


def _remote_glob_base(pattern: str) -> str:
  scheme, _, rest = pattern.partition('://')
  parts = rest.split('/')
  base = []
  for part in parts[:-1]:
    if corpus.is_glob(part):
      break
    base.append(part)
  return f'{scheme}://' + '/'.join(base)
