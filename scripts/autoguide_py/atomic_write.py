"""Write a file so that it appears complete or not at all: the one temp-name-and-rename helper.

No import of torch here: any writer (torch.save, torch.jit.save, np.save) fills the temporary path.
"""

import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_path(path):
    """A temporary path beside `path` to write the file to.

    On a clean exit the file gets the permissions a newly created file would (0666 less the umask) and
    replaces `path` in one rename, so readers see the old file or the whole new one; on an exception the
    temporary file is removed. Creating the temporary file raises OSError before the body runs.
    """
    path = os.path.abspath(path)
    fd, tmp = tempfile.mkstemp(prefix=f'.{os.path.basename(path)}.', suffix='.tmp', dir=os.path.dirname(path))
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
