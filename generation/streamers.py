"""Streamers: ``generate(..., streamer=s)`` calls ``s.put(token_ids)`` with the prompt, then with each new token as
it is chosen (a numpy array, one entry per row), and ``s.end()`` once at the end, in all three frameworks."""

from __future__ import annotations

import numpy as np


class TextStreamer:
    """Prints the decoded text of a single sequence as it grows, a word at a time.

    ``skip_prompt=True`` leaves the prompt out; ``decode_kwargs`` go to ``tokenizer.decode`` (e.g.
    ``skip_special_tokens=True``). Subclasses may override ``on_finalized_text`` to send the text elsewhere.
    """

    def __init__(self, tokenizer, skip_prompt: bool = False, **decode_kwargs):
        self.tokenizer = tokenizer
        self.skip_prompt = skip_prompt
        self.decode_kwargs = decode_kwargs
        self._tokens: list[int] = []
        self._printed = 0  # characters of the decoded pending tokens already handed out
        self._at_prompt = True

    def put(self, token_ids) -> None:
        ids = np.asarray(token_ids)
        rows = ids.shape[0] if ids.ndim > 1 else ids.size  # the prompt comes as [rows, length], tokens as [rows]
        if rows > 1:
            raise ValueError("TextStreamer follows one sequence: generate with a batch of 1 (and one return sequence)")
        if self.skip_prompt and self._at_prompt:
            self._at_prompt = False
            return
        self._at_prompt = False
        self._tokens.extend(int(t) for t in ids.reshape(-1))
        text = self.tokenizer.decode(self._tokens, **self.decode_kwargs)
        if text.endswith("\n"):
            self._emit(text[self._printed:], stream_end=False)
            self._tokens, self._printed = [], 0
        elif not text.endswith("\ufffd"):  # a multi-byte character is still incomplete: wait for its rest
            finished = text[self._printed:text.rfind(" ") + 1]
            self._printed += len(finished)
            if finished:
                self._emit(finished, stream_end=False)

    def end(self) -> None:
        text = self.tokenizer.decode(self._tokens, **self.decode_kwargs)[self._printed:] if self._tokens else ""
        self._tokens, self._printed, self._at_prompt = [], 0, True
        self._emit(text, stream_end=True)

    def _emit(self, text: str, stream_end: bool) -> None:
        self.on_finalized_text(text, stream_end=stream_end)

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        print(text, flush=True, end="" if not stream_end else None)
