r"""Downloads the VGGish checkpoint and PCA parameters, verified.

  python -m tools.download                 # into workspace.checkpoint_dir()
  python -m tools.download --dest DIR      # somewhere else
  python -m tools.download --force         # fetch again even if present
  python -m tools.download --base_url URL  # from a mirror with the same names

Files already present and valid are skipped; an interrupted download resumes.
Exit status: 0 on success; 2 (one line on stderr) when a file cannot be
downloaded or fails verification.
"""


from absl import app
from absl import flags

from vggish import cli
from vggish import download
from vggish import workspace

_DEST = flags.DEFINE_string(
    'dest', None,
    'Folder for the files. Default: $VGGISH_CHECKPOINT_DIR, else the '
    "clone's checkpoints/ folder, else ~/.cache/vggish.")
_FORCE = flags.DEFINE_bool(
    'force', False, 'Download even when a valid copy is present.')
_BASE_URL = flags.DEFINE_string(
    'base_url', None,
    f'Download from this URL prefix instead of {workspace.BASE_URL} (a mirror '
    'holding the files under their names).')
_TIMEOUT = flags.DEFINE_float(
    'timeout', 30.0, 'Seconds to wait for the server on connect and each read.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  try:
    paths = download.download_model_files(
        dest_dir=_DEST.value, force=_FORCE.value, base_url=_BASE_URL.value,
        timeout=_TIMEOUT.value)
  except download.DownloadError as e:
    return cli.report_error(e)
  for name, path in paths.items():
    print(f'{name}: {path}')
  return 0


if __name__ == '__main__':
  app.run(main)
