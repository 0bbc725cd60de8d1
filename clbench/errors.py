"""User-facing errors: the CLI prints their message on one line and exits with code 2."""


class UserError(Exception):
    """Bad input from the user (unknown name, bad config, missing data or weights).

    The message must be one line that says what is wrong and what to do.
    """


class MissingResourceError(UserError):
    """A dataset, weight file or reference corpus is not where it is expected."""
