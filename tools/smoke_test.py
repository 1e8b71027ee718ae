r"""Checks an installation: a 1 kHz sine through frontend, VGGish and PCA.

  python -m tools.smoke_test
  python -m tools.smoke_test --checkpoint PATH --pca_params PATH

Prints each statistic measured vs expected (upstream's values for the released
checkpoint, within 10 %) and `Looks Good To Me` when all hold.
Exit status: 0 when every check holds; 1 when one does not; 2 (one line on
stderr) when a model file is missing or cannot be loaded.
"""


from absl import app
from absl import flags

from vggish import cli
from vggish import workspace

_CHECKPOINT = flags.DEFINE_string(
    'checkpoint', None,
    'VGGish checkpoint. Default: vggish_model.ckpt in the checkpoint folder '
    '($VGGISH_CHECKPOINT_DIR, else the clone\'s checkpoints/, else '
    '~/.cache/vggish).')
_PCA_PARAMS = flags.DEFINE_string(
    'pca_params', None,
    'PCA parameters. Default: vggish_pca_params.npz in the checkpoint folder.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  try:
    checkpoint_path = workspace.require_model_file(
        _CHECKPOINT.value, workspace.CHECKPOINT_NAME)
    pca_params_path = workspace.require_model_file(
        _PCA_PARAMS.value, workspace.PCA_PARAMS_NAME)
  except workspace.MissingModelFileError as e:
    return cli.report_error(e)
  # Imported after the file checks: TensorFlow takes seconds to import and may
  # log to stderr, which a missing file should not wait for or show.
  # pylint: disable=g-import-not-at-top
  from vggish import smoke
  # pylint: enable=g-import-not-at-top
  try:
    result = smoke.run_smoke_test(checkpoint_path, pca_params_path)
  except (ValueError, OSError) as e:
    # A checkpoint or PCA file that cannot be loaded (CheckpointError is a
    # ValueError): a setup problem like a missing file, not a failed check.
    return cli.report_error(e)
  print(result.report())
  if not result.passed:
    print(f'Smoke test FAILED: {len(result.failures)} of {len(result.checks)} '
          'checks did not hold (see above).')
    return 1
  print('Looks Good To Me')
  return 0


if __name__ == '__main__':
  app.run(main)
