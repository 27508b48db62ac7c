"""Image sizes: what a node stores (uncompressed) and what it pulls (gzip-compressed layers).

Fargate has no image cache, so the worker's compressed size is roughly what every Fargate worker
downloads before it can start; the worker/notebook ratio is the figure this project tracks
(``bench/images/sizes.json``). Compressed sizes are measured by gzip-compressing each layer of
the image as the engine exports it (the compression registries store), so they do not depend on
a registry being reachable.
"""

from __future__ import annotations

import json
import tarfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import IO, Any, cast

import docker

# The level `docker push` / containers-image use by default.
GZIP_LEVEL = 6
CHUNK = 1 << 20


@dataclass(frozen=True)
class ImageSize:
    image: str
    reference: str
    uncompressed_bytes: int
    compressed_bytes: int
    layers: int
    # Compressed bytes of the layers its parent image does not have (a node with the worker
    # pulls only this much more for the notebook).
    compressed_beyond_parent_bytes: int | None = None


def _compressed_size(stream: IO[bytes]) -> int:
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # 31: gzip framing
    total = 0
    for block in iter(lambda: stream.read(CHUNK), b""):
        total += len(compressor.compress(block))
    return total + len(compressor.flush())


class _ChunkReader:
    """A file-like view of the engine's export stream, for tarfile's streaming mode."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            try:
                self._buffer += next(self._chunks)
            except StopIteration:
                break
        if size < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data


def layer_sizes(client: docker.DockerClient, reference: str) -> list[tuple[str, int]]:
    """(layer digest, compressed bytes) in order, from the engine's ``docker save`` export."""
    image = client.images.get(reference)
    compressed: dict[str, int] = {}
    manifest: list[dict[str, Any]] = []
    stream = cast(IO[bytes], _ChunkReader(image.save(chunk_size=CHUNK)))
    with tarfile.open(fileobj=stream, mode="r|") as archive:
        for member in archive:
            if not member.isfile():
                continue
            handle = archive.extractfile(member)
            assert handle is not None
            if member.name == "manifest.json":
                manifest = json.loads(handle.read())
            elif member.name.endswith((".tar", "/layer.tar")):
                compressed[member.name] = _compressed_size(handle)
    (entry,) = manifest
    digests = image.attrs["RootFS"]["Layers"]
    return [(digests[i], compressed[path]) for i, path in enumerate(entry["Layers"])]


def measure(
    client: docker.DockerClient,
    references: Mapping[str, str],
    parents: Mapping[str, str],
) -> list[ImageSize]:
    """Sizes of ``references`` (image -> reference); ``parents``: image -> parent image."""
    layers = {image: layer_sizes(client, ref) for image, ref in references.items()}
    sizes = []
    for image, reference in references.items():
        own = layers[image]
        beyond = None
        parent = parents.get(image)
        if parent in layers:
            inherited = {digest for digest, _ in layers[parent]}
            beyond = sum(size for digest, size in own if digest not in inherited)
        sizes.append(
            ImageSize(
                image=image,
                reference=reference,
                uncompressed_bytes=int(client.images.get(reference).attrs["Size"]),
                compressed_bytes=sum(size for _, size in own),
                layers=len(own),
                compressed_beyond_parent_bytes=beyond,
            )
        )
    return sizes


def record(sizes: Sequence[ImageSize], facts: Mapping[str, Any]) -> dict[str, Any]:
    """The committed JSON: sizes in bytes and MB, and the worker/notebook ratios."""
    by_image = {s.image: s for s in sizes}
    document: dict[str, Any] = {
        **facts,
        "images": {
            s.image: {
                **asdict(s),
                "uncompressed_mb": round(s.uncompressed_bytes / 1e6, 1),
                "compressed_mb": round(s.compressed_bytes / 1e6, 1),
            }
            for s in sizes
        },
    }
    if "worker" in by_image and "notebook" in by_image:
        worker, notebook = by_image["worker"], by_image["notebook"]
        document["worker_to_notebook"] = {
            "uncompressed": round(worker.uncompressed_bytes / notebook.uncompressed_bytes, 3),
            "compressed": round(worker.compressed_bytes / notebook.compressed_bytes, 3),
        }
    return document
