"""What every CLI shares: a user mistake ends in one line, not a traceback.

A wrong path, a missing model file, a label map that does not fit the records:
library code raises `ValueError` or `OSError` (`FileNotFoundError`,
`vggish.workspace.MissingModelFileError`, ...) with a message saying what to
do. The CLIs print that message as one `error:` line on stderr and exit with
`EXIT_USAGE`; anything else is a bug and keeps its traceback.
"""

import functools
import logging
import os
import sys

EXIT_USAGE = 2


def report_error(error) -> int:
  """Prints `error` as one `error: ...` line on stderr; returns `EXIT_USAGE`."""
  print(f'error: {" ".join(str(error).split())}', file=sys.stderr)
  return EXIT_USAGE


def exit_on_user_error(main):
  """Wraps an absl `main(argv)`: ValueError/OSError -> one line, exit status 2."""

  @functools.wraps(main)
  def wrapped(argv):
    try:
      return main(argv)
    except (ValueError, OSError) as e:
      return report_error(e)

  return wrapped


def parse_flags(argv):
  """absl's flag parser, but a bad flag is a one-line usage error (exit status 2).

  For positional-argument CLIs: `app.run(main, flags_parser=cli.parse_flags)`.
  """
  from absl import flags  # pylint: disable=import-outside-toplevel
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(EXIT_USAGE)


def run(main, define_flags):
  """Defines the flags and runs `main` under absl with user errors caught."""
  from absl import app  # pylint: disable=import-outside-toplevel
  define_flags()
  app.run(exit_on_user_error(main))


def exit_fast(main):
  """Wraps an absl `main(argv)` to end the process as soon as it returns.

  Once a command has returned, everything it wrote is durable (shards and
  manifest are fsynced and renamed), so the process can skip Python's
  teardown of TensorFlow (its thread pools, the model's weights freed object
  by object): about 1.2 s of a one-file extraction's whole-process time on a
  2-core machine. Output streams and log handlers are flushed first; an
  exception still propagates with its traceback.
  """

  @functools.wraps(main)
  def wrapped(argv):
    status = main(argv)
    logging.shutdown()  # Flushes every handler (absl's included).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status if isinstance(status, int) else (0 if status is None else 1))

  return wrapped
