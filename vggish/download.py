"""Resumable, verified downloads of the released VGGish files.

`download` streams a URL to `dest + '.part'`, resumes an existing `.part` with
an HTTP Range request, checks size and SHA-256, and only then renames the file
into place, so `dest` either does not exist or is complete and verified.
`download_model_files` fetches the checkpoint and the PCA parameters into
`workspace.checkpoint_dir()`.

Every failure (offline, DNS, HTTP error, interrupted transfer, wrong content)
raises `DownloadError` whose message is one line: the URL, why, and how to
fetch the file by hand.
"""

import hashlib
import http.client
import logging
import os
import pathlib
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import Dict, Iterable, Optional, Union

from vggish import progress as progress_lib
from vggish import workspace

PathLike = Union[str, os.PathLike]

_CHUNK_BYTES = 1 << 20
_USER_AGENT = 'vggish-tf2-download/1'
_CONTENT_RANGE = re.compile(r'bytes\s+(\d+)-(\d+)/(\d+|\*)')
_CONTENT_RANGE_UNSATISFIED = re.compile(r'bytes\s+\*/(\d+)')

logger = logging.getLogger(__name__)


class DownloadError(OSError):
  """A file could not be downloaded or did not verify; the message says why."""


def part_path(dest: PathLike) -> pathlib.Path:
  """Where `download` keeps the incomplete file: `dest + '.part'`."""
  dest = pathlib.Path(dest)
  return dest.with_name(dest.name + '.part')


def file_sha256(path: PathLike) -> str:
  """Lowercase hex SHA-256 of a file's content, read in 1 MiB chunks."""
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    for chunk in iter(lambda: f.read(_CHUNK_BYTES), b''):
      digest.update(chunk)
  return digest.hexdigest()


def verify_file(path: PathLike,
                sha256: Optional[str] = None,
                size: Optional[int] = None) -> Optional[str]:
  """Checks a file's size and SHA-256.

  Args:
    path: the file.
    sha256: expected hex digest (any case), or None to skip the check.
    size: expected size in bytes, or None to skip the check.

  Returns:
    None when the file matches, else a short description of the mismatch.
  """
  actual_size = os.path.getsize(path)
  if size is not None and actual_size != size:
    return f'size is {actual_size} bytes, expected {size}'
  if sha256 is not None:
    actual = file_sha256(path)
    if actual != sha256.lower():
      return f'sha256 is {actual}, expected {sha256.lower()}'
  return None


def _manual_hint(url: str, dest: pathlib.Path) -> str:
  return (f'To fetch it by hand, run `curl -L -o {dest} {url}` or save {url} '
          f'as {dest} with a browser.')


def _describe_network_error(reason: object, url: str, timeout: float) -> str:
  host = urllib.parse.urlsplit(url).hostname or url
  if isinstance(reason, socket.gaierror):
    return f'cannot resolve host {host}: {reason.strerror}; offline?'
  if isinstance(reason, ConnectionRefusedError):
    return f'connection to {host} refused'
  if isinstance(reason, (TimeoutError, socket.timeout)):
    return f'no answer from {host} within {timeout:g} s'
  if isinstance(reason, OSError) and reason.strerror:
    return f'{host}: {reason.strerror}; offline?'
  return f'{host}: {reason}'


def _open(url: str, offset: int, timeout: float):
  headers = {'User-Agent': _USER_AGENT}
  if offset:
    headers['Range'] = f'bytes={offset}-'
  request = urllib.request.Request(url, headers=headers)
  return urllib.request.urlopen(request, timeout=timeout)


def _fetch(url: str, dest: pathlib.Path, offset: int, size: Optional[int],
           show_progress: bool, timeout: float) -> None:
  """Appends the rest of `url` to the `.part` of `dest`, from byte `offset`."""
  part = part_path(dest)
  hint = _manual_hint(url, dest)
  try:
    response = _open(url, offset, timeout)
  except urllib.error.HTTPError as e:
    e.close()
    if e.code == 416 and offset:
      # Nothing lies past `offset`: the .part is complete (a previous run
      # stopped before the rename) or longer than the file; verification or
      # a fresh start decides.
      match = _CONTENT_RANGE_UNSATISFIED.match(
          e.headers.get('Content-Range') or '')
      if match and int(match.group(1)) == offset:
        return
      logger.info('%s: cannot resume at byte %d; restarting', url, offset)
      part.unlink()
      _fetch(url, dest, 0, size, show_progress, timeout)
      return
    raise DownloadError(
        f'Could not download {url} (HTTP error {e.code} {e.reason}). {hint}'
    ) from e
  except urllib.error.URLError as e:
    raise DownloadError(
        f'Could not download {url} '
        f'({_describe_network_error(e.reason, url, timeout)}). {hint}') from e
  except (OSError, http.client.HTTPException) as e:
    raise DownloadError(
        f'Could not download {url} '
        f'({_describe_network_error(e, url, timeout)}). {hint}') from e
  except ValueError as e:  # A malformed URL, e.g. a bad --base_url.
    raise DownloadError(f'Could not download {url} ({e}).') from e

  with response:
    status = getattr(response, 'status', None)
    mode = 'wb'
    if offset:
      if status == 206:
        match = _CONTENT_RANGE.match(
            response.headers.get('Content-Range') or '')
        if not match or int(match.group(1)) != offset:
          # A partial answer that does not continue our file: start over.
          logger.info('%s: unexpected Content-Range %r; restarting', url,
                      response.headers.get('Content-Range'))
          response.close()
          part.unlink()
          _fetch(url, dest, 0, size, show_progress, timeout)
          return
        mode = 'ab'
      else:
        # The server ignored the Range header and sends the whole file.
        logger.info('%s does not support resuming; restarting from byte 0', url)
        offset = 0
    length = response.headers.get('Content-Length')
    remaining = int(length) if length is not None else None
    total = offset + remaining if remaining is not None else size
    if size is not None and total is not None and total != size:
      raise DownloadError(
          f'Could not download {url} (the server reports {total} bytes, '
          f'expected {size}: a different file?). {hint}')

    received = 0
    try:
      with open(part, mode) as f, progress_lib.Progress(
          total=total, unit='B', desc=dest.name, initial=offset,
          enabled=show_progress) as bar:
        while True:
          chunk = response.read(_CHUNK_BYTES)
          if not chunk:
            break
          f.write(chunk)
          received += len(chunk)
          bar.update(len(chunk))
        f.flush()
        os.fsync(f.fileno())
    except (OSError, http.client.HTTPException) as e:
      raise DownloadError(
          f'Download of {url} interrupted after {offset + received} bytes '
          f'({e}); run the command again to resume. {hint}') from e
    if remaining is not None and received < remaining:
      raise DownloadError(
          f'Download of {url} interrupted (the connection closed after '
          f'{offset + received} of {total} bytes); run the command again to '
          f'resume. {hint}')


def download(url: str,
             dest: PathLike,
             sha256: Optional[str] = None,
             size: Optional[int] = None,
             progress: bool = True,
             timeout: float = 30) -> pathlib.Path:
  """Downloads `url` to `dest`, resuming an earlier attempt, and verifies it.

  The data goes to `dest + '.part'` first; an existing `.part` is continued
  with an HTTP Range request (a server that ignores Range sends the whole
  file, which then replaces the `.part`). Only a file that passes the size and
  SHA-256 checks is renamed to `dest` (atomically, on the same filesystem).

  Args:
    url: http(s) (or file) URL.
    dest: final path; its folder is created when missing.
    sha256: expected hex digest, or None to skip the check.
    size: expected size in bytes, or None to skip the check.
    progress: show a progress line (MB, MB/s, ETA) on stderr.
    timeout: seconds to wait for the server on connect and on each read.

  Returns:
    `dest` as a `pathlib.Path`.

  Raises:
    DownloadError: the server could not be reached, answered with an HTTP
      error, the transfer was interrupted (the `.part` is kept for resuming),
      or the file failed verification (the `.part` is deleted).
  """
  dest = pathlib.Path(dest).expanduser()
  part = part_path(dest)
  try:
    dest.parent.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise DownloadError(
        f'Cannot create the folder {dest.parent} for {url} ({e}).') from e
  offset = part.stat().st_size if part.exists() else 0
  if size is not None and offset > size:
    # Longer than the file: not a prefix of it.
    part.unlink()
    offset = 0
  if offset:
    logger.info('resuming %s at byte %d', dest.name, offset)
  if size is None or offset < size:
    _fetch(url, dest, offset, size, progress, timeout)
  problem = verify_file(part, sha256=sha256, size=size)
  if problem is not None:
    part.unlink()
    raise DownloadError(
        f'Downloaded {url} but it failed verification ({problem}); the '
        f'partial file was deleted, run the command again to retry. '
        f'{_manual_hint(url, dest)}')
  os.replace(part, dest)
  return dest


def verify_checkpoint(path: PathLike, sha256_verified: bool = False) -> None:
  """Checks that `path` loads as a VGGish slim checkpoint.

  `vggish.checkpoint.read_slim_checkpoint` reads every tensor and checks the
  variable names and shapes against `SLIM_VARIABLES`.

  Args:
    path: the checkpoint (V1 file or V2 prefix).
    sha256_verified: the file already matched its published SHA-256; a load
      failure then means a bug in our reader, so the file is kept.

  Raises:
    DownloadError: the file cannot be read or does not hold VGGish's
      variables. The file is deleted unless `sha256_verified`.
  """
  # Imported here: it pulls in TensorFlow, which only this check needs.
  from vggish import checkpoint  # pylint: disable=g-import-not-at-top
  path = pathlib.Path(path)
  try:
    checkpoint.read_slim_checkpoint(path)
    return
  except Exception as e:  # pylint: disable=broad-except
    # The reader may fail in many ways on a corrupt file (CheckpointError,
    # TensorFlow's DataLossError, ...); all of them mean "not loadable".
    problem = ' '.join(f'{type(e).__name__}: {e}'.split())  # One line.
  if sha256_verified:
    raise DownloadError(
        f'{path} matches the published SHA-256 but does not load as a VGGish '
        f'checkpoint ({problem}); this is a bug in vggish.checkpoint, please '
        f'report it.')
  path.unlink()
  raise DownloadError(
      f'{path} is not a valid VGGish checkpoint and was deleted ({problem}).')


def download_model_files(
    dest_dir: Optional[PathLike] = None,
    force: bool = False,
    base_url: Optional[str] = None,
    files: Optional[Iterable[workspace.ModelFile]] = None,
    progress: bool = True,
    timeout: float = 30) -> Dict[str, pathlib.Path]:
  """Downloads the VGGish checkpoint and PCA parameters, skipping valid copies.

  Args:
    dest_dir: target folder; None means `workspace.checkpoint_dir()`.
    force: download even when a valid file is present (and drop any `.part`).
    base_url: a mirror holding the files under their names; None means each
      file's official URL.
    files: the files to fetch; None means `workspace.MODEL_FILES`.
    progress: show progress on stderr.
    timeout: seconds to wait for the server on connect and on each read.

  Returns:
    Dict of file name -> path of the verified file.

  Raises:
    DownloadError: a file could not be downloaded or verified; the checkpoint
      is additionally checked by loading it (`verify_checkpoint`).
  """
  dest_dir = (workspace.checkpoint_dir() if dest_dir is None
              else pathlib.Path(dest_dir).expanduser())
  files = workspace.MODEL_FILES.values() if files is None else files
  paths = {}
  for model_file in files:
    dest = dest_dir / model_file.name
    if base_url is None:
      url = model_file.url
    else:
      url = f'{base_url.rstrip("/")}/{model_file.name}'
    if force:
      part_path(dest).unlink(missing_ok=True)
    elif dest.is_file():
      problem = verify_file(dest, sha256=model_file.sha256,
                            size=model_file.size)
      if problem is None:
        logger.info('%s is present and verified', dest)
        paths[model_file.name] = dest
        continue
      logger.warning('%s: %s; downloading it again', dest, problem)
    download(url, dest, sha256=model_file.sha256, size=model_file.size,
             progress=progress, timeout=timeout)
    if model_file.name == workspace.CHECKPOINT_NAME:
      verify_checkpoint(dest, sha256_verified=model_file.sha256 is not None)
    paths[model_file.name] = dest
  return paths
