"""One progress bar style for every long loop, readable in notebooks and in headless logs.

Bars go to stdout (in an executed notebook stderr shows as red error-coloured
blocks), appear only for loops that take more than two seconds, and refresh
at most every five seconds, so a Papermill log stays short.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")
QUIET = False  # set in worker processes (helpers.parallel): only the parent's bar is shown


def progress(iterable: Iterable[T], desc: str, total: int | None = None, **kwargs) -> tqdm:
    kwargs.setdefault("disable", QUIET)
    return tqdm(iterable, desc=desc, total=total, file=sys.stdout, delay=2, mininterval=5, ascii=True, **kwargs)
