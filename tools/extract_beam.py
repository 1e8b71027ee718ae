r"""`tools.extract` as an Apache Beam pipeline: local workers, Dataflow, Flink, Spark.

  python -m tools.extract_beam --output outputs/my_corpus [--postprocess] INPUT...
  python -m tools.extract_beam --output gs://bucket/embeddings --postprocess \
      --checkpoint gs://bucket/vggish/vggish_model.ckpt \
      --pca_params gs://bucket/vggish/vggish_pca_params.npz \
      --runner DataflowRunner --project P --region R --temp_location gs://bucket/tmp \
      --setup_file ./pyproject.toml 'gs://bucket/audio/**/*.wav'

Takes the inputs and settings of `tools.extract` (files, directories, globs;
--input_csv with --audio_dir; --label_map; --checkpoint, --pca_params,
--postprocess, --hop_seconds, --short_clip_policy, --batch_size, ...), where
every path may also be a URL that Beam's FileSystems reach (gs://, s3://,
hdfs://), and any Beam pipeline option (--runner, --direct_num_workers,
--direct_running_mode, Dataflow's --num_workers, --machine_type, ...). It
writes the same output directory: `embeddings-NNNNN.tfrecord` shards whose
records are the bytes `tools.extract` writes, `manifest.csv` (one row per
input, `ok` or `failed` with the reason) and `extract_config.json`.

Without --runner the pipeline runs on this machine: the DirectRunner's
FnApiRunner (not its Prism runner, which downloads a binary), with
--direct_running_mode multi_processing and one worker process per two cores
unless you say otherwise.

An output directory that already holds an extraction is refused unless
--skip_existing is given: then inputs it has `ok` are skipped, so a corpus can
be extended, failed inputs retried, or an interrupted job finished (records a
dead job had staged are kept).

Exit status: 0 every input is extracted; 3 some inputs failed (reasons in the
manifest); 2 usage error (one line on stderr; also when the `beam` extra is
not installed); 4 the output could not be written (disk full, permissions;
also when a worker could not write); 5 the Beam job failed otherwise
(what it completed is kept: rerun with --skip_existing); 130 interrupted.
"""

import os

# See tools/extract.py: decoding must not fan out over every core.
os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')
# Every worker process would print TensorFlow's start-up notices.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '1')

import sys  # pylint: disable=g-import-not-at-top,wrong-import-position

from absl import app
from absl import flags
from absl import logging

from vggish import cli
from vggish import corpus
from vggish import extras
from vggish import manifest
from vggish import workspace
from vggish.pipelines import options

_FLAGS = options.define_flags()
flags.adopt_module_key_flags(options)  # --help lists the shared flags too.
_SKIP_EXISTING = flags.DEFINE_bool(
    'skip_existing', False, 'Extend or finish an earlier extraction in --output: '
    'inputs it has ok are skipped (without it such a directory is refused).')

# Set by `parse_flags`: Beam's options and the INPUT arguments.
_ARGS = {'beam': [], 'inputs': []}


def default_direct_workers() -> int:
  """Local worker processes: one per two cores (each runs TensorFlow's own threads)."""
  return max(1, (os.cpu_count() or 1) // 2)


def _beam_parser():
  """Beam's own parser of pipeline options (to tell their values from INPUTs)."""
  pipeline_options = extras.require('apache_beam.options.pipeline_options', 'beam',
                                    'tools.extract_beam')
  captured = []
  pipeline_options.PipelineOptions([]).get_all_options(
      add_extra_args_fn=captured.append)
  return captured[0]


def split_beam_args(args):
  """Splits what absl left into (Beam options, INPUT arguments).

  Raises:
    options.UsageError: an option neither absl nor Beam knows.
  """
  parser = _beam_parser()
  beam_args, inputs = [], []
  tokens = iter(args)
  for token in tokens:
    if token == '--':
      inputs.extend(tokens)
      break
    if not token.startswith('-') or token == '-':
      inputs.append(token)
      continue
    name = token.split('=', 1)[0]
    action = parser._option_string_actions.get(name)  # pylint: disable=protected-access
    if action is None:
      raise options.UsageError(
          f'unknown option {name} (neither a flag of tools.extract_beam, see '
          f'--help, nor a Beam pipeline option)')
    beam_args.append(token)
    if '=' not in token and action.nargs != 0:
      value = next(tokens, None)
      if value is None:
        raise options.UsageError(f'{name} needs a value')
      beam_args.append(value)
  return beam_args, inputs


def _with_local_defaults(beam_args):
  """Adds the local runner's defaults where the user chose no runner."""
  names = {arg.split('=', 1)[0] for arg in beam_args if arg.startswith('--')}
  if '--runner' in names:
    return list(beam_args)
  defaults = []
  if '--direct_running_mode' not in names:
    defaults.append('--direct_running_mode=multi_processing')
  if '--direct_num_workers' not in names:
    defaults.append(f'--direct_num_workers={default_direct_workers()}')
  # Our workers' progress stays visible; Beam's own chatter does not.
  if '--sdk_harness_log_level_overrides' not in names:
    defaults.append('--sdk_harness_log_level_overrides='
                    '{"apache_beam": "WARNING", "__main__": "WARNING"}')
  return defaults + list(beam_args)


def run(inputs, beam_args) -> int:
  """Runs the pipeline for the parsed flags; returns the exit status."""
  output = _FLAGS.output.value
  if not output:
    raise options.UsageError('--output DIR is required')
  params = options.params(_FLAGS)
  # Needs the `beam` extra (MissingExtraError says so); TensorFlow is not
  # imported before the usage checks.
  from vggish.pipelines import filesystem  # pylint: disable=import-outside-toplevel
  if not filesystem.has_scheme(output) and os.path.exists(output) and not os.path.isdir(
      output):
    raise options.UsageError(f'--output {output!r} exists and is not a directory')
  items = options.find_inputs(_FLAGS, inputs, discover=filesystem.discover_inputs,
                              files=filesystem.BEAM_FILES)
  # Before anything is written: a missing download leaves no output behind.
  filesystem.check_model_file(_FLAGS.checkpoint.value, workspace.CHECKPOINT_NAME)
  if _FLAGS.postprocess.value:
    filesystem.check_model_file(_FLAGS.pca_params.value, workspace.PCA_PARAMS_NAME)
  from apache_beam.options import pipeline_options  # pylint: disable=import-outside-toplevel
  from vggish.pipelines import beam as beam_pipeline  # pylint: disable=import-outside-toplevel
  # (Neither imports TensorFlow: the workers do, when they build the model.)
  filesystem.makedirs(output)
  beam_pipeline.check_output(output, _SKIP_EXISTING.value)
  items, label_map = corpus.prepare_labels(
      items, output, _FLAGS.label_map.value, filesystem.BEAM_FILES)
  if label_map is not None:
    logging.info('label map: %d classes', len(label_map))
  beam_options = pipeline_options.PipelineOptions(_with_local_defaults(beam_args))
  # Beam's own INFO lines (and the local runner's copies of its workers' log
  # lines, which the workers print themselves) would bury the progress.
  import logging as py_logging  # pylint: disable=import-outside-toplevel
  py_logging.getLogger('apache_beam').setLevel(py_logging.WARNING)
  py_logging.getLogger('apache_beam.runners.portability.local_job_service').setLevel(
      py_logging.ERROR)
  result = beam_pipeline.run_extraction(
      items, output, checkpoint_path=_FLAGS.checkpoint.value,
      postprocess=_FLAGS.postprocess.value, pca_params_path=_FLAGS.pca_params.value,
      params=params, records_per_shard=_FLAGS.records_per_shard.value,
      batch_size=_FLAGS.batch_size.value, nonfinite=_FLAGS.nonfinite.value,
      allow_tf32=_FLAGS.allow_tf32.value, skip_existing=_SKIP_EXISTING.value,
      pipeline_options=beam_options)
  return options.report(result, 'rerun with --skip_existing')


def main(argv):
  del argv  # Split by `parse_flags`.
  try:
    return run(_ARGS['inputs'], _ARGS['beam'])
  except extras.MissingExtraError as e:
    return cli.report_error(e)
  except manifest.OutputWriteError as e:
    cli.report_error(e)
    return options.EXIT_OUTPUT
  except (ValueError, workspace.MissingModelFileError) as e:
    return cli.report_error(e)
  except RuntimeError as e:
    from vggish.pipelines import beam as beam_pipeline  # pylint: disable=import-outside-toplevel
    if not isinstance(e, beam_pipeline.PipelineError):
      raise
    cli.report_error(e)
    return options.EXIT_PIPELINE
  except KeyboardInterrupt:
    print('interrupted: records already staged are kept; rerun the same command '
          'with --skip_existing to finish', file=sys.stderr)
    return options.EXIT_INTERRUPTED


def parse_flags(argv):
  """absl's flags, then Beam's options and the INPUTs; mistakes exit 2 in one line."""
  try:
    rest = flags.FLAGS(argv, known_only=True)
    _ARGS['beam'], _ARGS['inputs'] = split_beam_args(rest[1:])
  except (flags.Error, options.UsageError) as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(cli.EXIT_USAGE)
  except extras.MissingExtraError as e:
    cli.report_error(e)
    sys.exit(cli.EXIT_USAGE)
  return rest[:1]


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
