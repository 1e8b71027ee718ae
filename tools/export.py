r"""Exports VGGish as a SavedModel or a TFLite model that takes a 16 kHz waveform.

  python -m tools.export --output models/vggish/1 --format saved_model \
      [--checkpoint PATH] [--pca_params PATH]
  python -m tools.export --output exports/ --format tflite [--quantize dynamic] \
      [--checkpoint PATH] [--pca_params PATH]

Both formats have the signatures `embed_waveform` (waveform float32 [batch,
samples] at 16 kHz, lengths int32 [batch] -> embeddings [batch, max_examples,
128], num_examples [batch]) and `embed_examples` (examples [n, 96, 64] ->
embeddings [n, 128]); with --pca_params each also returns `quantized` uint8
embeddings (upstream's PCA and 8-bit quantization). See vggish/export.py.

--format saved_model writes the SavedModel into --output (for TF Serving, make
it a numbered version folder). --format tflite writes --output/vggish.tflite,
or --output/vggish_dynamic.tflite with --quantize dynamic (int8 weights).

Zero examples give well-formed empty outputs; the SavedModel refuses NaN/Inf
inputs (the TFLite runner `vggish.export.TFLiteModel` checks them in numpy).
Neither file carries TensorFlow's TF32 switch: on an Ampere or later GPU, the
process serving a SavedModel must call
`tf.config.experimental.enable_tensor_float_32_execution(False)` itself.

Exit status: 0 written; 2 a model file is missing or unreadable (or its
weights hold NaN/Inf), or the flags do not fit together (one line on stderr).
"""

import sys

from absl import app
from absl import flags

from vggish import cli
from vggish import workspace

_OUTPUT = flags.DEFINE_string(
    'output', None, 'SavedModel directory, or directory of the .tflite file.')
_FORMAT = flags.DEFINE_enum('format', None, ['saved_model', 'tflite'], 'Export format.')
_QUANTIZE = flags.DEFINE_enum(
    'quantize', 'none', ['none', 'dynamic'],
    'TFLite only: dynamic = dynamic-range quantization (int8 weights).')
_CHECKPOINT = flags.DEFINE_string(
    'checkpoint', None,
    'VGGish checkpoint (slim V1/V2 or .weights.h5). Default: vggish_model.ckpt '
    'in the checkpoint folder ($VGGISH_CHECKPOINT_DIR, else the clone\'s '
    'checkpoints/, else ~/.cache/vggish).')
_PCA_PARAMS = flags.DEFINE_string(
    'pca_params', None,
    'vggish_pca_params.npz: adds the `quantized` uint8 output (PCA + 8-bit '
    'quantization, as the released AudioSet features). Default: no PCA.')

flags.mark_flags_as_required(['output', 'format'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  if _FORMAT.value == 'saved_model' and _QUANTIZE.value != 'none':
    print('error: --quantize applies to --format tflite only', file=sys.stderr)
    return 2
  try:
    checkpoint = workspace.require_model_file(_CHECKPOINT.value, workspace.CHECKPOINT_NAME)
    pca_params = None
    if _PCA_PARAMS.value is not None:
      pca_params = workspace.require_model_file(_PCA_PARAMS.value, workspace.PCA_PARAMS_NAME)
  except workspace.MissingModelFileError as e:
    return cli.report_error(e)
  # Imported after the file checks: TensorFlow takes seconds to import.
  from vggish import export  # pylint: disable=g-import-not-at-top
  try:
    path = export.export(_OUTPUT.value, _FORMAT.value, checkpoint,
                         pca_params=pca_params, quantize=_QUANTIZE.value)
  except (ValueError, OSError) as e:
    # CheckpointError and ExportError are ValueErrors: unusable files or flags.
    return cli.report_error(e)
  quantized = ', quantized' if pca_params is not None else ''
  print(f'wrote {path}')
  print(f'signatures: {export.SIGNATURE_WAVEFORM}(waveform, lengths) -> embeddings, '
        f'num_examples{quantized}; {export.SIGNATURE_EXAMPLES}(examples) -> '
        f'embeddings{quantized}')
  return 0


if __name__ == '__main__':
  app.run(main)
