"""couponsvc as a twin in your own tests: a real ``couponsvc serve --twin`` process and a small client.

With pytest the plugin (``couponsvc.testing.plugin``, registered through the ``pytest11`` entry point)
gives the fixtures ``couponsvc_server`` and ``couponsvc``; without pytest use ``start_twin``.
Standard library only (``urllib``), so installing couponsvc adds nothing to a test environment.
"""

from couponsvc.testing.twin import DEFAULT_SEED, CouponsvcTwin, TwinError, start_twin

__all__ = ["DEFAULT_SEED", "CouponsvcTwin", "TwinError", "start_twin"]
