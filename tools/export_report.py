r"""Fidelity and speed of the exports against the Keras float32 model, in one run.

  python -m tools.export_report [--checkpoint PATH] [--pca_params PATH] \
      [--num_threads N] [--rounds 7] [--output_json report.json] [--work_dir DIR] \
      [--weight_rounding]

Exports a SavedModel, a float32 .tflite and a dynamic-range quantized .tflite
(into --work_dir, or a temporary folder), reloads them and prints two tables:
- fidelity on the golden inputs (tests/golden, when this is a clone) and on
  seeded generated audio: max relative error and cosine similarity of the
  embeddings, and agreement of the postprocessed bytes (exact and within +-1)
  with `vggish.postprocess` of the Keras embeddings (needs PCA parameters);
- speed: median time per call of each model and signature on the same inputs,
  TensorFlow and TFLite both limited to --num_threads, and the ratio to Keras
  (a batch of 32 examples, one example, and 4 x 5 s waveforms).
With --weight_rounding, the fidelity table also gets rows for the Keras model
with int8-rounded kernels (each layer alone, then groups) and float32
activations: what int8 weights alone cost, which bounds any dynamic-range model.
The machine's load average (`uptime`) is printed before and after: timings on
a shared machine are only comparable within one run.

Exit status: 0 done; 2 a model file is missing or unreadable (one line).
"""

import os
import pathlib
import tempfile

from absl import app
from absl import flags

from vggish import cli
from vggish import workspace

_CHECKPOINT = flags.DEFINE_string(
    'checkpoint', None, 'VGGish checkpoint. Default: vggish_model.ckpt in the '
    'checkpoint folder.')
_PCA_PARAMS = flags.DEFINE_string(
    'pca_params', None, 'PCA parameters (for the byte figures). Default: '
    'vggish_pca_params.npz in the checkpoint folder, if present.')
_NUM_THREADS = flags.DEFINE_integer(
    'num_threads', None, 'Threads for TensorFlow (intra-op) and TFLite alike. '
    'Default: the number of CPUs.', lower_bound=1)
_ROUNDS = flags.DEFINE_integer('rounds', 7, 'Timed calls per model and input.',
                               lower_bound=1)
_OUTPUT_JSON = flags.DEFINE_string('output_json', None, 'Also write the figures as JSON.')
_WORK_DIR = flags.DEFINE_string(
    'work_dir', None, 'Keep the exports here (default: a temporary folder).')
_MODELS = flags.DEFINE_list(
    'models', ['saved_model', 'tflite', 'tflite_dynamic'], 'Exports to measure.')

_WEIGHT_ROUNDING = flags.DEFINE_bool(
    'weight_rounding', False, 'Also measure the Keras model with int8-rounded '
    'kernels (each layer alone, then groups), activations in float32: what '
    'int8 weights alone cost the bytes.')

_GOLDEN_DIR = pathlib.Path(__file__).resolve().parent.parent / 'tests' / 'golden'


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  try:
    checkpoint = workspace.require_model_file(_CHECKPOINT.value, workspace.CHECKPOINT_NAME)
    pca_params = _PCA_PARAMS.value
    if pca_params is not None:
      pca_params = workspace.require_model_file(pca_params, workspace.PCA_PARAMS_NAME)
    elif workspace.default_pca_params_path().exists():
      pca_params = workspace.default_pca_params_path()
  except workspace.MissingModelFileError as e:
    return cli.report_error(e)
  threads = _NUM_THREADS.value or os.cpu_count() or 1
  # Thread counts only take effect before TensorFlow's runtime starts.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.threading.set_intra_op_parallelism_threads(threads)
  tf.config.threading.set_inter_op_parallelism_threads(threads)
  from vggish import export  # pylint: disable=g-import-not-at-top
  golden_dir = _GOLDEN_DIR if _GOLDEN_DIR.is_dir() else None
  with tempfile.TemporaryDirectory(prefix='vggish_export_report_') as tmp:
    try:
      report = export.run_report(checkpoint, pca_params, _WORK_DIR.value or tmp,
                                 golden_dir=golden_dir, num_threads=threads,
                                 rounds=_ROUNDS.value, models=_MODELS.value,
                                 weight_rounding=_WEIGHT_ROUNDING.value)
    except (ValueError, OSError) as e:
      return cli.report_error(e)
  print(report.table())
  if _OUTPUT_JSON.value:
    pathlib.Path(_OUTPUT_JSON.value).write_text(report.to_json() + '\n')
    print(f'wrote {_OUTPUT_JSON.value}')
  return 0


if __name__ == '__main__':
  app.run(main)
