"""Applications on top of the floor, services and offline tools: the `raildebug` command."""
