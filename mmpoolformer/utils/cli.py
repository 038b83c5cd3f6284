"""The tools' handling of user errors: one line on stderr, no traceback."""
import functools
import sys

from mmpoolformer.utils.errors import USER_ERRORS


def cli(main):
    """Run a tool's main(), turning user errors into a one-line message."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except USER_ERRORS as err:
            message = str(err).strip()
            if 'Original Traceback' in message:  # raised in a DataLoader worker
                message = message.splitlines()[-1].split(': ', 1)[-1]
            sys.exit(f'error: {message}')

    return wrapper
