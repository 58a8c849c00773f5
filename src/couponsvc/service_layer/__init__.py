"""The service layer: one function per API operation, each in a unit of work."""
