"""A snapshot's download through the ``oci`` SDK with 1 and N connections, against the local Object
Storage server capped per connection (``Bandwidth``: one OCI object stream moves tens of MB/s), so
that what the restore's concurrent ranged GETs gain is measured on a link shaped like OCI's, not
loopback's. In-process: the figure is the download and open (``fetch_image``), nothing else."""

from __future__ import annotations

import time

#: The cap per connection (bytes/s) and the connection counts compared.
CAP_BYTES_PER_S = 50_000_000
CONNECTIONS = (1, 4)
#: Ranges of this size (the adapter's default is 16 MiB; smaller here so small images split too).
RANGE_BYTES = 4 << 20


def measure_parallel_download(data: bytes, name: str, cap: int = CAP_BYTES_PER_S) -> dict:
    import oci
    from cryptography.hazmat.primitives.asymmetric import rsa

    from streamcache.adapters.oci_object_store import OciObjectStore
    from streamcache.replay.snapshot_image import fetch_image
    from streamcache_local.bandwidth import Bandwidth
    from streamcache_local.object_storage import start_object_storage

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signer = oci.auth.signers.SecurityTokenSigner(token="bench", private_key=key)
    out: dict = {"cap_mb_s": cap / 1e6, "image_bytes": len(data), "range_bytes": RANGE_BYTES}
    with start_object_storage(bandwidth=Bandwidth(cap)) as server:
        for connections in CONNECTIONS:
            store = OciObjectStore.from_url(server.url("snapshots"), endpoint=server.endpoint, signer=signer,
                                            retry_strategy=oci.retry.NoneRetryStrategy(), timeout=(5, 300),
                                            connections=connections, range_bytes=RANGE_BYTES)
            if connections == CONNECTIONS[0]:
                store.put_new(name, data)
            started = time.perf_counter()
            snapshot, _ = fetch_image(store, name, file_min_bytes=None)
            seconds = time.perf_counter() - started
            snapshot.table.close()
            store.close()
            out[str(connections)] = {"seconds": round(seconds, 3), "mb_s": round(len(data) / 1e6 / seconds, 1)}
    first, last = out[str(CONNECTIONS[0])]["seconds"], out[str(CONNECTIONS[-1])]["seconds"]
    out["speedup"] = round(first / last, 2)
    return out
