"""The lake's Parquet encoding: what the stream writes and what compaction rewrites."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq


def parquet_bytes(table: pa.Table) -> bytes:
    """Deterministic Parquet bytes: the same rows always give the same object."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", use_dictionary=True, write_statistics=True)
    return sink.getvalue()
