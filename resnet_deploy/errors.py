"""The one exception type that the CLI turns into a single line on stderr and a non-zero exit."""


class UserError(Exception):
    """Bad input or environment that the user can fix; its message is shown as-is, without a traceback."""
