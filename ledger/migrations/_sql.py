"""Read the ledger's SQL migration files (a released file is never edited; changes are new files)."""

from pathlib import Path

SQL_DIR = Path(__file__).resolve().parent / "sql"


def load(name: str) -> str:
    """Return the text of ``sql/<name>``, sent to the server whole by RunSQL."""
    return (SQL_DIR / name).read_text(encoding="utf-8")
