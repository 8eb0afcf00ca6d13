"""The error that the readers and exporters report, and the one-line form of text taken from a file."""


class ExportError(Exception):
    """A problem with the user's input, as one line that names it and the fix."""


def shown(text, limit=80):
    """Text from a file, fit for a one-line message: control characters escaped, at most `limit` characters."""
    text = str(text).encode('unicode_escape').decode('ascii')
    return text if len(text) <= limit else text[:limit - 3] + '...'


class Refusal(ExportError):
    """The file names something that is never loaded; the message says what."""
