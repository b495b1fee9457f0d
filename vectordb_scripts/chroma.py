"""The ChromaDB edge: open the client (embedded or server), the cosine collection, paged reads.

Chroma's default embedding function downloads an ONNX model and fails offline, so collections
are always opened with `embedding_function=None` and every call passes embeddings explicitly.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

PAGE_SIZE = 5000
# Rows per upsert: well under the embedded and server limits (get_max_batch_size() is >= 5461).
UPSERT_BATCH = 1000
COSINE_CONFIGURATION = {"hnsw": {"space": "cosine"}}


class VectorIndexUnavailable(RuntimeError):
    """ChromaDB cannot be reached, or the collection does not exist."""


def _settings() -> Any:
    from chromadb.config import Settings

    return Settings(anonymized_telemetry=False, allow_reset=False)


def open_client(chroma_url: str, path: Path, create: bool = True) -> Any:
    """An HttpClient for `chroma_url` (e.g. http://127.0.0.1:8000), else a PersistentClient at `path`.

    With `create=False` a missing local directory raises instead of creating an empty database.
    """
    import chromadb

    try:
        if chroma_url:
            parsed = urlparse(chroma_url if "://" in chroma_url else f"http://{chroma_url}")
            port = parsed.port or (443 if parsed.scheme == "https" else 8000)
            return chromadb.HttpClient(
                host=parsed.hostname or "127.0.0.1", port=port, ssl=parsed.scheme == "https", settings=_settings()
            )
        if not create and not Path(path).is_dir():
            raise VectorIndexUnavailable(f"no ChromaDB directory at {path}")
        Path(path).mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(path), settings=_settings())
    except VectorIndexUnavailable:
        raise
    except Exception as exc:  # chromadb raises plain ValueError/ConnectionError variants
        raise VectorIndexUnavailable(f"cannot open ChromaDB ({chroma_url or path}): {exc}") from exc


def open_collection(client: Any, name: str, create: bool = True) -> Any:
    """The movie collection with cosine HNSW and no embedding function (never a model download)."""
    try:
        if create:
            return client.get_or_create_collection(name, embedding_function=None, configuration=COSINE_CONFIGURATION)
        return client.get_collection(name, embedding_function=None)
    except Exception as exc:
        raise VectorIndexUnavailable(f"ChromaDB collection {name!r} unavailable: {exc}") from exc


def _pages(collection: Any, include: list[str]) -> Iterator[dict[str, Any]]:
    offset = 0
    while True:
        page = collection.get(include=include, limit=PAGE_SIZE, offset=offset)
        if not page["ids"]:
            return
        yield page
        offset += len(page["ids"])


def stored_hashes(collection: Any) -> dict[str, str]:
    """Every stored id with the `text_hash` its embedding was computed from."""
    hashes: dict[str, str] = {}
    for page in _pages(collection, ["metadatas"]):
        for movie_id, meta in zip(page["ids"], page["metadatas"], strict=True):
            hashes[movie_id] = str((meta or {}).get("text_hash", ""))
    return hashes


def upsert(
    collection: Any,
    ids: Sequence[str],
    embeddings: np.ndarray,
    metadatas: Sequence[dict[str, Any]],
    documents: Sequence[str] | None = None,
    batch_size: int = UPSERT_BATCH,
) -> None:
    """Write embeddings in batches no larger than the server accepts."""
    size = batch_size
    for start in range(0, len(ids), size):
        stop = start + size
        collection.upsert(
            ids=list(ids[start:stop]),
            embeddings=embeddings[start:stop],
            metadatas=list(metadatas[start:stop]),
            documents=None if documents is None else list(documents[start:stop]),
        )


def delete(collection: Any, ids: Sequence[str]) -> None:
    for start in range(0, len(ids), PAGE_SIZE):
        collection.delete(ids=list(ids[start : start + PAGE_SIZE]))


def fetch_embeddings(collection: Any, ids: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Embeddings of `ids` in the order asked; ids Chroma does not hold are left out."""
    found: dict[str, np.ndarray] = {}
    for start in range(0, len(ids), PAGE_SIZE):
        page = collection.get(ids=list(ids[start : start + PAGE_SIZE]), include=["embeddings"])
        for movie_id, vector in zip(page["ids"], page["embeddings"], strict=True):
            found[movie_id] = np.asarray(vector, dtype=np.float32)
    order = [movie_id for movie_id in ids if movie_id in found]
    if not order:
        return [], np.zeros((0, 0), dtype=np.float32)
    return order, np.stack([found[movie_id] for movie_id in order])


def query_neighbours(collection: Any, embeddings: np.ndarray, k: int) -> tuple[list[list[str]], list[list[float]]]:
    """One batched query: for each embedding the k nearest ids and their cosine similarities."""
    if len(embeddings) == 0:
        return [], []
    result = collection.query(query_embeddings=embeddings, n_results=k, include=["distances"])
    similarities = [[1.0 - float(d) for d in row] for row in result["distances"]]
    return [list(row) for row in result["ids"]], similarities
