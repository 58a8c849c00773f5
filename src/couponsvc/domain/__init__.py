"""Domain rules and the error catalogue: pure Python, no I/O."""
