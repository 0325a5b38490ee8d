"""One rich console for human output (stderr keeps stdout clean for JSON lines)."""

from __future__ import annotations

from rich.console import Console

console = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


def fail(message: str, code: int = 2) -> int:
    """Print a one-line error and return the exit code for main()."""
    console.print(f"[bold red]error:[/] {message}")
    return code
