"""Read the ledger's SQL migration files (a released file is never edited; changes are new files)."""

from pathlib import Path

SQL_DIR = Path(__file__).resolve().parent / "sql"


def load(name: str) -> str:
    """Return the text of ``sql/<name>``, sent to the server whole by RunSQL."""
    return (SQL_DIR / name).read_text(encoding="utf-8")


def function(file: str, name: str) -> str:
    """Return function ``name`` as ``sql/<file>`` defines it, as CREATE OR REPLACE (for reversals)."""
    text = load(file)
    start = text.rindex("CREATE", 0, text.index(f"FUNCTION {name}("))
    end = text.index("$$;", text.index("AS $$", start)) + 3
    definition = text[start + len("CREATE ") : end].removeprefix("OR REPLACE ")
    return "CREATE OR REPLACE " + definition
