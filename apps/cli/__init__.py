"""The `raildebug` command."""
