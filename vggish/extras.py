"""Optional dependencies: imported where a feature needs them, with one clear error.

The core (`pip install -e .`) installs and imports without them; a feature
that needs one calls `require(...)` and the user reads which extra to install.
"""

import importlib
import logging
import sys
import threading

# Serializes first imports: `logging.disable` is process-wide, and two threads
# saving and restoring it in an interleaved order left it on for good (a FAD
# run's reading workers import scipy at once, and every log record after
# that was dropped).
_IMPORT_LOCK = threading.Lock()


class MissingExtraError(ImportError):
  """A feature needs an optional dependency that is not installed."""


def require(module: str, extra: str, feature: str):
  """Imports `module`, or raises `MissingExtraError` naming the extra to install.

  Args:
    module: the module to import ('apache_beam').
    extra: the project extra that installs it ('beam').
    feature: what needs it, for the message ('the Beam pipeline').

  Returns:
    The imported module.
  """
  imported = sys.modules.get(module)
  if imported is not None:
    return imported
  with _IMPORT_LOCK:
    # Some packages warn at import about their own optional parts (Beam:
    # "apitools not found"), which is noise for a user who does not use those
    # parts. (The records of other threads at or below WARNING are dropped
    # too while a first import runs.)
    previous = logging.root.manager.disable
    logging.disable(max(previous, logging.WARNING))
    try:
      return importlib.import_module(module)
    except ImportError as e:
      raise MissingExtraError(
          f'{feature} needs the optional package {module.split(".")[0]!r}, which is '
          f'not installed ({e}); install it with pip install -e ".[{extra}]" in '
          f'this repository') from e
    finally:
      logging.disable(previous)
