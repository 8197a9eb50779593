"""Score a CSV file against a running aeserve, in batches, and write the answers as CSV.

    python examples/score_csv.py transactions.csv scored.csv --model creditcard \
        --url http://localhost:8000 --id-column tx_id --batch-size 256 --top 3

The input CSV has a header; every feature of the model (see GET /models/{name}) must be a
column (extra columns such as a label are ignored; --id-column is sent as each record's id).
The output has one row per input row: id, score, percentile, threshold, is_anomaly and the
top contributing features as ``feature:share`` pairs separated by ";" (feature names may hold
spaces), and the model version. Uses aeserve's client (``pip install clients/python``): the
API key (``--api-key`` or ``AESERVE_API_KEY``), retries on 503 with Retry-After, problem
details as errors.
Exit status: 0 when every batch was scored, 1 on an error answer (its problem detail printed).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from aeserve_client import ApiError, Client, TransportError


def features_of(client: Client, model: str) -> list[str]:
    """The model's feature names, in order, from GET /models/{name}."""
    names = client.model(model)["input"].get("features")
    if not names:
        raise SystemExit(f"model {model!r} is not a tabular model")
    return list(names)


def batches(
    path: Path, features: list[str], id_column: str | None, size: int
) -> Iterator[list[dict[str, Any]]]:
    """Records of ``size`` rows: raw values by feature name, plus ``id`` when asked."""
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [f for f in features if f not in header]
        if missing:
            raise SystemExit(f"{path}: missing feature column(s) {', '.join(missing)}")
        if id_column and id_column not in header:
            raise SystemExit(f"{path}: no id column {id_column!r}")
        batch: list[dict[str, Any]] = []
        for line, row in enumerate(reader, start=2):
            record: dict[str, Any] = {}
            for f in features:
                try:
                    record[f] = float(row[f])
                except (TypeError, ValueError):
                    raise SystemExit(f"{path}:{line}: {f} is not a number: {row[f]!r}") from None
            record["id"] = row[id_column] if id_column else line - 1
            batch.append(record)
            if len(batch) == size:
                yield batch
                batch = []
        if batch:
            yield batch


def score_file(
    url: str,
    model: str,
    src: Path,
    dst: Path,
    *,
    id_column: str | None = None,
    batch_size: int = 256,
    top: int = 3,
    timeout: float = 30.0,
    api_key: str | None = None,
) -> dict[str, int]:
    """Score ``src`` into ``dst``; returns counts (rows, flagged, requests)."""
    counts = {"rows": 0, "flagged": 0, "requests": 0}
    with Client(url, timeout=timeout, api_key=api_key) as client:
        features = features_of(client, model)
        with dst.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(
                ["id", "score", "percentile", "threshold", "is_anomaly", "top_features", "version"]
            )
            for records in batches(src, features, id_column, batch_size):
                answer = client.anomaly_score(model=model, records=records, top_features=top)
                counts["requests"] += 1
                for res in answer.results or []:
                    top_list = ";".join(
                        f"{c['feature']}:{c['share']:.3f}" for c in res["contributions"]
                    )
                    writer.writerow(
                        [
                            res["id"],
                            f"{res['score']:.6g}",
                            f"{res['percentile']:.2f}",
                            f"{res['threshold']:.6g}",
                            int(res["is_anomaly"]),
                            top_list,
                            answer.version,
                        ]
                    )
                    counts["rows"] += 1
                    counts["flagged"] += int(res["is_anomaly"])
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("src", type=Path, help="input CSV with a header row")
    p.add_argument("dst", type=Path, help="output CSV")
    p.add_argument("--model", required=True, help="tabular model name")
    p.add_argument("--url", default="http://localhost:8000", help="aeserve base URL")
    p.add_argument("--id-column", help="column sent as each record's id (default: row number)")
    p.add_argument("--batch-size", type=int, default=256, help="records per request")
    p.add_argument("--top", type=int, default=3, help="top contributing features per row")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    p.add_argument("--api-key", default=os.environ.get("AESERVE_API_KEY"), help="API key")
    args = p.parse_args(argv)
    started = time.perf_counter()
    try:
        counts = score_file(
            args.url,
            args.model,
            args.src,
            args.dst,
            id_column=args.id_column,
            batch_size=args.batch_size,
            top=args.top,
            timeout=args.timeout,
            api_key=args.api_key,
        )
    except (ApiError, TransportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    took = time.perf_counter() - started
    print(
        f"scored {counts['rows']} rows in {counts['requests']} requests ({took:.2f}s): "
        f"{counts['flagged']} flagged -> {args.dst}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
