"""Tables for the terminal that never cut a value: rich tables where they fit, a wrapped record per row where not.

Rich shrinks a table that is wider than the console by truncating cells ("resne…"), which hides exactly what a
table is read for (names, counts). Here every column but the one named ``wrap`` keeps its full width; when even
that does not fit, each row is printed as one wrapped line of ``header value`` pairs instead.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from typing import Literal

from rich.console import Console
from rich.table import Table

Justify = Literal["left", "right", "center"]


def terminal_console(stderr: bool = False) -> Console:
    """A console for tables: the terminal's width, ``$COLUMNS`` when set, and wide (one row per line) when piped."""
    console = Console(stderr=stderr)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console = Console(stderr=stderr, width=200)
    return console


def build_table(
    title: str | None, columns: Sequence[tuple[str, Justify]], rows: Sequence[Sequence[str]], wrap: str | None
) -> Table:
    """A rich table whose columns (all but ``wrap``) are as wide as their widest cell, never narrower."""
    table = Table(title=title, title_justify="left")
    for i, (header, justify) in enumerate(columns):
        widest = max([len(header), *(len(r[i]) for r in rows)])
        if header == wrap:
            table.add_column(header, justify=justify, overflow="fold", ratio=1)
        else:
            table.add_column(header, justify=justify, no_wrap=True, min_width=widest)
    for row in rows:
        table.add_row(*row)
    return table


#: The narrowest a wrapping column may become before rows are printed as records instead (a few words a line).
MIN_WRAP_WIDTH = 24


def table_width(columns: Sequence[tuple[str, Justify]], rows: Sequence[Sequence[str]], wrap: str | None) -> int:
    """Columns needed by :func:`build_table`'s table (rich's default box: a border and 1-space padding each side),
    with the ``wrap`` column at its narrowest. Computed here because rich's own measurement of a table does not
    count ``min_width`` the way its renderer does."""
    widths = []
    for i, (header, _) in enumerate(columns):
        widest = max([len(header), *(len(r[i]) for r in rows)])
        widths.append(min(widest, MIN_WRAP_WIDTH) if header == wrap else widest)
    return sum(w + 2 for w in widths) + len(columns) + 1


def record_lines(columns: Sequence[tuple[str, Justify]], rows: Sequence[Sequence[str]], width: int) -> list[str]:
    """Each row as ``first-cell: header value, ...`` wrapped at ``width`` (words are never split)."""
    lines = []
    for row in rows:
        fields = ", ".join(f"{header} {value}" for (header, _), value in zip(columns[1:], row[1:], strict=True))
        lines += textwrap.wrap(
            f"{row[0]}: {fields}",
            width=max(width, 20),
            subsequent_indent="    ",
            break_long_words=False,
            break_on_hyphens=False,
        )
    return lines


def print_table(
    console: Console,
    title: str | None,
    columns: Sequence[tuple[str, Justify]],
    rows: Sequence[Sequence[str]],
    wrap: str | None = None,
    droppable: Sequence[str] = (),
) -> None:
    """Print ``rows`` as a table if it fits ``console`` (only ``wrap`` may wrap), leaving out the ``droppable``
    columns in order (and saying so) when it does not; as wrapped records when even that does not fit."""
    cols, cells, dropped = list(columns), [list(r) for r in rows], []
    for name in [None, *droppable]:
        if name is not None:
            i = [c[0] for c in cols].index(name)
            cols.pop(i)
            for row in cells:
                row.pop(i)
            dropped.append(name)
        if table_width(cols, cells, wrap) <= console.width:
            console.print(build_table(title, cols, cells, wrap if wrap not in dropped else None))
            if dropped:
                console.print(f"({', '.join(dropped)} left out to fit {console.width} columns; --json has all)",
                              highlight=False, markup=False)  # fmt: skip
            return
    if title:
        console.print(title, style="italic", highlight=False)
    for line in record_lines(columns, rows, console.width):
        console.print(line, highlight=False, markup=False, soft_wrap=True)
