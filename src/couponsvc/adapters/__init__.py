"""Adapters: the SQL store, migrations, seed and CSV loaders."""
