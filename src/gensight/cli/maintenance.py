"""``gensight rebuild``: recompute what the writer keeps beside the records, offline.

Run it with the server stopped (a DuckDB file has one writer). The rollups and the
search index are kept in step by every write, so a rebuild is for a store whose copies
were lost or damaged, or written by a version without them (opening such a store builds
them too).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from gensight.model.settings import Settings

#: What can be rebuilt, and the store method that does it.
WHAT = {"rollups": "rebuild_rollups", "search": "rebuild_search"}


def rebuild(
    what: Annotated[str, typer.Argument(help="what to rebuild: rollups or search")] = "rollups",
    store: Annotated[
        str | None,
        typer.Option(
            help="store URL (default: the DuckDB file in --data-dir)", envvar="GENSIGHT_STORE"
        ),
    ] = None,
    data_dir: Annotated[
        Path, typer.Option(help="the server's data directory", envvar="GENSIGHT_DATA_DIR")
    ] = Path("./gensight-data"),
) -> None:
    """Recompute the hourly rollups or the search index from the stored records."""
    from gensight.store import open_store

    if what not in WHAT:
        raise typer.BadParameter(f"{what!r}: one of {', '.join(WHAT)}", param_hint="WHAT")
    url = store or Settings(data_dir=data_dir).store_url()
    st = open_store(url)
    try:
        build = getattr(st, WHAT[what], None)
        if build is None or (what == "search" and getattr(st, "search", None) is None):
            raise typer.BadParameter(f"this store keeps no {what} (DuckDB with tantivy does)")
        t = time.perf_counter()
        build()
        typer.echo(f"rebuilt {what} of {url} in {time.perf_counter() - t:.1f} s")
    finally:
        st.close()
