"""The subprocess side of benchmarks/generate.py's out-of-process candidates.

A candidate that cannot share the main process (transformers' TF classes need legacy tf-keras, KerasHub on JAX needs
KERAS_BACKEND=jax) runs in a helper script that calls ``serve``: one JSON request per line on stdin, one JSON reply
per line on the original stdout. Anything a library prints goes to stderr, so it never corrupts a reply.

Requests: {"op": "load", "model", "folder", "dtype"} -> {}; {"op": "prepare", "model", "ids", "mask", "new_tokens",
"beams"} -> {"first": seconds, "ids": nested list} (the first, compiling, call); {"op": "time"} -> {"seconds": s}
(one more call of the prepared case). A failure replies {"error": "Type: message"}. The process ends with its input.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable

import numpy as np


def serve(load: Callable, make_call: Callable) -> None:
    """``load(model, folder, dtype)`` returns a loaded model; ``make_call(loaded, model, ids, mask, new_tokens,
    beams)`` a no-argument call returning the ids (prompt included) as a numpy array."""
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    loaded = call = None
    for line in sys.stdin:
        request = json.loads(line)
        try:
            reply = {}
            if request["op"] == "load":
                loaded = call = None  # frees the previous model before the next one is built
                loaded = load(request["model"], request["folder"], request["dtype"])
            elif request["op"] == "prepare":
                call = None
                ids, mask = np.asarray(request["ids"]), np.asarray(request["mask"])
                call = make_call(loaded, request["model"], ids, mask, request["new_tokens"], request["beams"])
                start = time.perf_counter()
                output = call()
                reply = {"first": time.perf_counter() - start, "ids": np.asarray(output).tolist()}
            elif request["op"] == "time":
                start = time.perf_counter()
                call()
                reply = {"seconds": time.perf_counter() - start}
            else:
                raise ValueError(f"unknown op {request['op']!r}")
        except Exception as err:  # the main process reports it in the row
            reply = {"error": f"{type(err).__name__}: {err}"}
        replies.write(json.dumps(reply) + "\n")
