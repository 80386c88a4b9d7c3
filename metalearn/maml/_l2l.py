"""The one place learn2learn is imported.

learn2learn imports the retired `gym`, which prints a deprecation notice to stderr at import; we
silence that notice here, for this import only.
"""

import contextlib
import io
import warnings

with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import learn2learn as l2l

__all__ = ["l2l"]
