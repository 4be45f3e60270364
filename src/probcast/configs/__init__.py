"""Training configurations (``get_config()`` modules) and name resolution."""

from __future__ import annotations

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent


def available() -> list[str]:
    """Names of the bundled configurations."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.py") if not p.stem.startswith("_"))


def resolve(name_or_path: str) -> str:
    """Return the file of a bundled config name (``"tiny"``) or ``name_or_path`` itself.

    A ``:arg`` suffix (passed to ``get_config(arg)`` by ml_collections) is kept.
    """
    base, sep, arg = name_or_path.partition(":")
    if base in available():
        return str(CONFIG_DIR / f"{base}.py") + sep + arg
    if not Path(base).exists():
        raise FileNotFoundError(
            f"config {base!r} is neither a file nor a bundled config ({', '.join(available())})"
        )
    return name_or_path
