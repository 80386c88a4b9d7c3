"""The one place learn2learn is imported.

learn2learn imports the retired `gym`, which prints a deprecation notice to stderr at import; we
silence that notice here, for this import only.
"""

import contextlib
import io
import warnings

from metalearn.maml.engines import LEARN2LEARN_MISSING

with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
    warnings.simplefilter("ignore")
    try:
        import learn2learn as l2l
    except ImportError as missing:
        raise ImportError(LEARN2LEARN_MISSING) from missing

__all__ = ["l2l"]
