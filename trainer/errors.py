"""The one exception type the command line turns into a one-line message and exit code 1."""


class TrainerError(Exception):
    """A runtime failure the user can fix: missing data, a bad file, no checkpoint.

    The message names the bad value and the fix; `task.main` prints it on one line.
    """
