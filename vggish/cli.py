"""What every CLI shares: a user mistake ends in one line, not a traceback.

A wrong path, a missing model file, a label map that does not fit the records:
library code raises `ValueError` or `OSError` (`FileNotFoundError`,
`vggish.workspace.MissingModelFileError`, ...) with a message saying what to
do. The CLIs print that message as one `error:` line on stderr and exit with
`EXIT_USAGE`; anything else is a bug and keeps its traceback.
"""

import functools
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


def run(main, define_flags):
  """Defines the flags and runs `main` under absl with user errors caught."""
  from absl import app  # pylint: disable=import-outside-toplevel
  define_flags()
  app.run(exit_on_user_error(main))
