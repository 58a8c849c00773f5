"""The twin control plane over HTTP: routes under /_couponsvc/ and the journal middleware (serve --twin)."""
