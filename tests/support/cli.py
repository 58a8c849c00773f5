"""The couponsvc CLI as an operator runs it: `python -m couponsvc ...` in a subprocess, on its own data
directory (SQLite unless a database URL is given), plus read-only looks at the database it wrote."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from couponsvc.adapters.db import make_engine


class Cli:
    def __init__(self, data_dir: Path, database_url: str | None = None) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        self.database_url = database_url or f"sqlite:///{data_dir}/couponsvc.db"
        env = {k: v for k, v in os.environ.items() if not k.startswith("COUPONSVC_")}
        self.env = {**env, "COUPONSVC_DATA_DIR": str(data_dir), "COUPONSVC_DATABASE_URL": self.database_url,
                    "COUPONSVC_LOG_LEVEL": "WARNING"}

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "couponsvc", *args], env=self.env, capture_output=True,
                                text=True, timeout=300, stdin=subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise AssertionError(f"couponsvc {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def refused(self, *args: str) -> str:
        """Run a command that must be refused with a clean message and exit status 2; returns stderr."""
        result = self.run(*args, check=False)
        assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        return result.stderr

    def write(self, name: str, content: str | bytes | dict[str, Any]) -> Path:
        path = self.data_dir / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content if isinstance(content, str) else json.dumps(content, indent=2),
                            encoding="utf-8", newline="")
        return path

    def load(self, seed: dict[str, Any], name: str = "seed.json") -> subprocess.CompletedProcess[str]:
        return self.run("load", str(self.write(name, seed)))

    def clone(self, data_dir: Path) -> Cli:
        """A Cli on a copy of this one's SQLite database: tests start from one loaded state, cheaply."""
        clone = Cli(data_dir)
        for f in self.data_dir.glob("couponsvc.db*"):
            shutil.copy2(f, data_dir / f.name)
        return clone

    # --- the database the commands wrote (SQLite) -------------------------------------------------
    @property
    def db(self) -> Path:
        return self.data_dir / "couponsvc.db"

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(self.db)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table, sorted: two equal snapshots mean the database did not change."""
        if not self.db.exists():
            return {}
        tables = [r[0] for r in self.query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        return {t: sorted(self.query(f'SELECT * FROM "{t}"'), key=repr) for t in tables}

    @contextmanager
    def engine(self) -> Iterator[Engine]:
        """The service's own engine on this database (for reads through SQLAlchemy or the service layer)."""
        engine = make_engine(self.database_url)
        try:
            yield engine
        finally:
            engine.dispose()
