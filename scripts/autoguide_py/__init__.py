"""Python side of autoguide: the EDM2 network, reading EDM2 pickles, exporting TorchScript.

Importing the package itself must stay free of torch so that `pyenv.ensure_torch()`
can run under an interpreter that lacks it.
"""

__version__ = '0.1.0'
