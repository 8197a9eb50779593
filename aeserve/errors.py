"""The one error type the command line reports as a user mistake (one line, exit status 2)."""


class UserError(Exception):
    """Something the user can fix: the message says what, in one line."""
