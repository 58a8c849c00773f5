"""The ``couponsvc`` command line."""
