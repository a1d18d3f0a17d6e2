"""Byte-level BPE tokenizers (RoBERTa, BART, OPT) on the ``tokenizers`` library, called as transformers' tokenizers.

A family subclass names its special tokens and its template (``_post_processor``); everything else lives here:
loading ``tokenizer.json`` or ``vocab.json`` + ``merges.txt`` from a folder or hub id, encoding single texts, pairs
and batches with truncation and padding, tensors for the four frameworks, decoding, and ``save_pretrained`` to files
that transformers' own tokenizer classes load.

Truncation and padding are done here per call, on the encodings, rather than by configuring the shared
``tokenizers.Tokenizer``, so that one tokenizer can serve calls with different settings (threads included).
Truncation follows the ``tokenizers`` library's rules, so results equal transformers' fast tokenizers.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from tokenizers import AddedToken, Encoding, Tokenizer, decoders, pre_tokenizers
from tokenizers.models import BPE
from tokenizers.processors import PostProcessor

from .hub import HUB_ARGUMENTS, missing_files_error, resolve_optional_file
from .io import atomic_write_text
from .lazy import missing_framework_error

VOCAB_NAME = "vocab.json"
MERGES_NAME = "merges.txt"
TOKENIZER_NAME = "tokenizer.json"
TOKENIZER_CONFIG_NAME = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_NAME = "special_tokens_map.json"

# transformers' model_max_length when nothing sets one, and the bound above which it means "no limit".
VERY_LARGE_INTEGER = int(1e30)
_NO_LIMIT = int(1e20)

# In transformers' order, which fixes the order of ``all_special_tokens``.
SPECIAL_TOKEN_ROLES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")

_PADDING = {False: None, "do_not_pad": None, True: "longest", "longest": "longest", "max_length": "max_length"}
_TRUNCATION = {False: None, "do_not_truncate": None, True: "longest_first", "longest_first": "longest_first",
               "only_first": "only_first", "only_second": "only_second"}
# return_tensors -> (module, function making a tensor from nested lists). torch and numpy get int64 as
# transformers gives; tf.constant and jnp.asarray keep their framework's default integer type (int32), as there.
_TENSOR_MAKERS = {
    "np": ("numpy", lambda np_, rows: np_.asarray(rows, dtype=np_.int64)),
    "pt": ("torch", lambda torch, rows: torch.tensor(rows, dtype=torch.int64)),
    "tf": ("tensorflow", lambda tf, rows: tf.constant(rows)),
    "jax": ("jax.numpy", lambda jnp, rows: jnp.asarray(rows)),
}


class BatchEncoding(dict):
    """The output of a tokenizer call: a dict of model inputs, also readable as attributes (``enc.input_ids``)."""

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"BatchEncoding has no {name!r} (it holds {list(self)})") from None

    def to(self, device) -> BatchEncoding:
        """Move PyTorch tensors to ``device`` (for ``return_tensors="pt"``)."""
        if not all(hasattr(value, "to") for value in self.values()):
            raise TypeError('BatchEncoding.to() needs PyTorch tensors: call the tokenizer with return_tensors="pt"')
        return BatchEncoding({key: value.to(device) for key, value in self.items()})


def clean_up_tokenization(text: str) -> str:
    """Remove the spaces that word-level tokenizations leave before punctuation and English contractions."""
    for spaced, joined in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                           (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
        text = text.replace(spaced, joined)
    return text


class _SpecialToken:
    """``tokenizer.<role>`` (the token string, or None when unset) and ``tokenizer.<role>_id``; both settable."""

    def __set_name__(self, owner, name: str):
        self.role = name.removesuffix("_id")
        self.as_id = name.endswith("_id")

    def __get__(self, tokenizer, owner=None):
        if tokenizer is None:
            return self
        token = tokenizer._special_tokens.get(self.role)
        if token is None or not self.as_id:
            return token
        return tokenizer._backend.token_to_id(token)

    def __set__(self, tokenizer, value):
        if self.as_id and value is not None:
            token = tokenizer._backend.id_to_token(value)
            if token is None:
                raise ValueError(f"{self.role}_id={value} is not in the vocabulary (size {len(tokenizer)})")
            value = token
        tokenizer._set_special_token(self.role, value)


class ByteLevelBPETokenizer:
    """Byte-level BPE with transformers' tokenizer interface. Subclasses set the class attributes below and
    implement ``_post_processor`` (the special-token template)."""

    # Default special tokens of the family; a role absent here has no token unless one is passed.
    special_token_defaults: ClassVar[dict[str, str]] = {}
    # Roles whose token, when given as a plain string, absorbs the space on its left (RoBERTa's <mask>).
    lstrip_special_tokens: ClassVar[frozenset[str]] = frozenset()
    model_input_names: ClassVar[tuple[str, ...]] = ("input_ids", "attention_mask")
    # The transformers class that loads what save_pretrained writes (tokenizer_config.json "tokenizer_class").
    hf_tokenizer_class: ClassVar[str] = ""

    bos_token = _SpecialToken()
    eos_token = _SpecialToken()
    unk_token = _SpecialToken()
    sep_token = _SpecialToken()
    pad_token = _SpecialToken()
    cls_token = _SpecialToken()
    mask_token = _SpecialToken()
    bos_token_id = _SpecialToken()
    eos_token_id = _SpecialToken()
    unk_token_id = _SpecialToken()
    sep_token_id = _SpecialToken()
    pad_token_id = _SpecialToken()
    cls_token_id = _SpecialToken()
    mask_token_id = _SpecialToken()

    def __init__(
        self,
        vocab_file: str | os.PathLike | None = None,
        merges_file: str | os.PathLike | None = None,
        tokenizer_file: str | os.PathLike | None = None,
        *,
        add_prefix_space: bool = False,
        trim_offsets: bool = True,
        model_max_length: int = VERY_LARGE_INTEGER,
        padding_side: str = "right",
        truncation_side: str = "right",
        clean_up_tokenization_spaces: bool = False,
        added_tokens_decoder: dict | None = None,
        name_or_path: str = "",
        **special_tokens: Any,
    ):
        unknown = sorted(set(special_tokens) - set(SPECIAL_TOKEN_ROLES))
        if unknown:
            raise TypeError(f"{type(self).__name__} got unexpected keyword arguments {unknown}")
        self.add_prefix_space = add_prefix_space
        self.trim_offsets = trim_offsets
        self.model_max_length = model_max_length
        self.padding_side = _check_side("padding_side", padding_side)
        self.truncation_side = _check_side("truncation_side", truncation_side)
        self.clean_up_tokenization_spaces = clean_up_tokenization_spaces
        self.name_or_path = os.fspath(name_or_path)
        self._backend = _load_backend(vocab_file, merges_file, tokenizer_file, add_prefix_space)
        # Tokens that transformers saved beside a vocab.json (tokenizer.json already holds its own).
        for _, token in sorted((added_tokens_decoder or {}).items(), key=lambda item: int(item[0])):
            self._register(_added_token(token))
        self._special_tokens: dict[str, str | None] = {}
        for role in SPECIAL_TOKEN_ROLES:
            value = special_tokens.get(role, self.special_token_defaults.get(role))
            self._set_special_token(role, value, rebuild=False)
        self._processor = self._post_processor()

    def _post_processor(self) -> PostProcessor:
        """The ``tokenizers`` post-processor that adds the family's special tokens around one text or a pair."""
        raise NotImplementedError(f"{type(self).__name__} must define its special-token template")

    # ------------------------------------------------------------------ loading and saving

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, **kwargs: Any):
        """Load from a folder or hub id holding ``tokenizer.json`` or ``vocab.json`` + ``merges.txt``.

        ``tokenizer_config.json`` and ``special_tokens_map.json`` are read when present (the settings this class
        takes; transformers' other keys are ignored); keyword arguments override them. Hub arguments: revision,
        cache_dir, local_files_only, token.
        """
        hub = {name: kwargs.pop(name) for name in HUB_ARGUMENTS if name in kwargs}

        def optional(filename: str) -> str | None:
            return resolve_optional_file(name_or_path, filename, **hub)

        settings = _read_json(optional(TOKENIZER_CONFIG_NAME))
        if "added_tokens_decoder" not in settings:  # transformers' precedence: the older file only fills in
            special_map = _read_json(optional(SPECIAL_TOKENS_MAP_NAME))
            settings.update({role: v for role, v in special_map.items() if role in SPECIAL_TOKEN_ROLES})
        # Only the settings this class takes (file paths and name_or_path that older files hold are not settings).
        parameters = inspect.signature(cls.__init__).parameters.items()
        accepted = {name for name, p in parameters if p.kind is p.KEYWORD_ONLY} | set(SPECIAL_TOKEN_ROLES)
        accepted.discard("name_or_path")
        settings = {key: value for key, value in settings.items() if key in accepted}
        settings.update({"name_or_path": os.fspath(name_or_path), **kwargs})
        files = {"tokenizer_file": optional(TOKENIZER_NAME)}
        if files["tokenizer_file"] is None:
            files = {"vocab_file": optional(VOCAB_NAME), "merges_file": optional(MERGES_NAME)}
            if None in files.values():
                raise missing_files_error(name_or_path, [TOKENIZER_NAME, f"{VOCAB_NAME} + {MERGES_NAME}"], **hub)
        return cls(**files, **settings)

    def save_pretrained(self, folder: str | os.PathLike, *, overwrite: bool = False) -> tuple[str, ...]:
        """Write vocab.json, merges.txt, tokenizer.json, tokenizer_config.json and special_tokens_map.json.

        Each file is written atomically; existing files are kept unless ``overwrite`` is true. Returns the paths.
        """
        contents = {
            VOCAB_NAME: json.dumps(self._backend.get_vocab(with_added_tokens=False), indent=2, sort_keys=True,
                                   ensure_ascii=False) + "\n",
            MERGES_NAME: "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in self._merges()),
            TOKENIZER_NAME: self.backend_tokenizer.to_str(pretty=True),
            TOKENIZER_CONFIG_NAME: _to_json(self._tokenizer_config()),
            SPECIAL_TOKENS_MAP_NAME: _to_json(self.special_tokens_map),
        }
        paths = {name: os.path.join(folder, name) for name in contents}
        existing = [path for path in paths.values() if os.path.exists(path)]
        if existing and not overwrite:
            raise FileExistsError(f"{', '.join(existing)} already exist; pass overwrite=True to replace them")
        for name, text in contents.items():
            atomic_write_text(paths[name], text, overwrite=overwrite)
        return tuple(paths.values())

    def _merges(self) -> list[tuple[str, str]]:
        # The BPE model does not expose its merges; its JSON form does ("a b" strings in older tokenizers).
        merges = json.loads(self._backend.model.__getstate__())["merges"]
        return [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in merges]

    def _tokenizer_config(self) -> dict[str, Any]:
        added = {str(i): token.__getstate__() for i, token in sorted(self._backend.get_added_tokens_decoder().items())}
        return {
            "tokenizer_class": self.hf_tokenizer_class,
            "add_prefix_space": self.add_prefix_space,
            "trim_offsets": self.trim_offsets,
            "model_max_length": self.model_max_length,
            "padding_side": self.padding_side,
            "truncation_side": self.truncation_side,
            "clean_up_tokenization_spaces": self.clean_up_tokenization_spaces,
            "added_tokens_decoder": added,
            **self.special_tokens_map,
        }

    @property
    def backend_tokenizer(self) -> Tokenizer:
        """A ``tokenizers.Tokenizer`` equal to this tokenizer with special tokens added (a copy)."""
        backend = Tokenizer.from_str(self._backend.to_str())
        backend.post_processor = self._processor
        return backend

    # ------------------------------------------------------------------ special tokens and vocabulary

    def _set_special_token(self, role: str, value, *, rebuild: bool = True) -> None:
        if value is None:
            self._special_tokens[role] = None
        else:
            token = _added_token(value, lstrip=role in self.lstrip_special_tokens, special=True)
            self._register(token)
            self._special_tokens[role] = token.content
        if rebuild:
            self._processor = self._post_processor()

    def _register(self, token: AddedToken) -> None:
        """Make ``token`` an added token of the backend unless it already is one (keeping the file's settings)."""
        if token.content in {t.content for t in self._backend.get_added_tokens_decoder().values()}:
            return
        if token.special:
            self._backend.add_special_tokens([token])
        else:
            self._backend.add_tokens([token])

    @property
    def special_tokens_map(self) -> dict[str, str]:
        return {role: token for role, token in self._special_tokens.items() if token is not None}

    @property
    def all_special_tokens(self) -> list[str]:
        return list(dict.fromkeys(self.special_tokens_map.values()))

    @property
    def all_special_ids(self) -> list[int]:
        return [self._backend.token_to_id(token) for token in self.all_special_tokens]

    @property
    def vocab_size(self) -> int:
        """The size of the BPE vocabulary, without tokens added on top of it (transformers' ``vocab_size``)."""
        return self._backend.get_vocab_size(with_added_tokens=False)

    def __len__(self) -> int:
        return self._backend.get_vocab_size(with_added_tokens=True)

    def get_vocab(self) -> dict[str, int]:
        return self._backend.get_vocab(with_added_tokens=True)

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return self._processor.num_special_tokens_to_add(pair)

    def convert_tokens_to_ids(self, tokens: str | Sequence[str]) -> int | list[int]:
        """Ids of tokens; an unknown token gives ``unk_token_id``."""
        if isinstance(tokens, str):
            found = self._backend.token_to_id(tokens)
            return self.unk_token_id if found is None else found
        return [self.convert_tokens_to_ids(token) for token in tokens]

    def convert_ids_to_tokens(self, ids: int | Sequence[int], skip_special_tokens: bool = False):
        """Tokens of ids (None for an id outside the vocabulary)."""
        if isinstance(ids, (int, np.integer)):
            return self._backend.id_to_token(int(ids))
        ids = _id_list(ids)
        skipped = set(self.all_special_ids) if skip_special_tokens else set()
        return [self._backend.id_to_token(i) for i in ids if i not in skipped]

    def convert_tokens_to_string(self, tokens: Sequence[str]) -> str:
        return self._backend.decoder.decode(list(tokens))

    # ------------------------------------------------------------------ encoding

    def __call__(
        self,
        text=None,
        text_pair=None,
        text_target=None,
        text_pair_target=None,
        *,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        is_split_into_words: bool = False,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_tensors: str | None = None,
        return_token_type_ids: bool | None = None,
        return_attention_mask: bool | None = None,
        return_special_tokens_mask: bool = False,
        return_offsets_mapping: bool = False,
        return_length: bool = False,
    ) -> BatchEncoding:
        """Encode a text, a batch of texts, or pairs of them, as transformers' tokenizers do.

        ``text_target`` (and ``text_pair_target``) are encoded the same way; their ``input_ids`` become ``labels``
        (or the whole result when ``text`` is None), for sequence-to-sequence training.
        """
        if text is None and text_target is None:
            raise ValueError("pass `text` (or `text_target`) to encode")
        options = {
            "add_special_tokens": add_special_tokens, "padding": padding, "truncation": truncation,
            "max_length": max_length, "is_split_into_words": is_split_into_words,
            "pad_to_multiple_of": pad_to_multiple_of, "padding_side": padding_side, "return_tensors": return_tensors,
            "return_token_type_ids": return_token_type_ids, "return_attention_mask": return_attention_mask,
            "return_special_tokens_mask": return_special_tokens_mask,
            "return_offsets_mapping": return_offsets_mapping, "return_length": return_length,
        }
        encoded = None if text is None else self._encode(text, text_pair, **options)
        if text_target is None:
            return encoded
        target = self._encode(text_target, text_pair_target, **options)
        if encoded is None:
            return target
        encoded["labels"] = target["input_ids"]
        return encoded

    def encode(self, text, text_pair=None, **kwargs: Any):
        """The ``input_ids`` of ``self(text, text_pair, **kwargs)``."""
        return self(text, text_pair, **kwargs)["input_ids"]

    def tokenize(self, text, pair=None, add_special_tokens: bool = False, **kwargs: Any) -> list[str]:
        """The token strings of one text (or pair), without special tokens unless asked.

        Tokens are the vocabulary's strings of the ids, so ``convert_tokens_to_ids`` inverts this (for a token that
        absorbed a space, such as RoBERTa's ``<mask>``, the ``tokenizers`` library would include that space).
        """
        encodings, batched = self._encodings(text, pair, add_special_tokens=add_special_tokens, **kwargs)
        if batched:
            raise ValueError("tokenize takes one text (or one pair); call the tokenizer for a batch")
        return [self._backend.id_to_token(i) for i in encodings[0].ids]

    def _encode(self, text, text_pair, *, return_tensors, return_token_type_ids, return_attention_mask,
                return_special_tokens_mask, return_offsets_mapping, return_length, **options) -> BatchEncoding:
        encodings, batched = self._encodings(text, text_pair, **options)
        if return_token_type_ids is None:
            return_token_type_ids = "token_type_ids" in self.model_input_names
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        wanted = {
            "input_ids": True,
            "token_type_ids": return_token_type_ids,
            "attention_mask": return_attention_mask,
            "special_tokens_mask": return_special_tokens_mask,
            "offset_mapping": return_offsets_mapping,
        }
        columns = {key: [_column(e, key) for e in encodings] for key, on in wanted.items() if on}
        if return_length:
            columns["length"] = [len(e.ids) for e in encodings]
        if return_tensors is not None:
            return BatchEncoding(_as_tensors(columns, return_tensors))
        if batched:
            return BatchEncoding(columns)
        # transformers keeps "length" a list even for one text.
        return BatchEncoding({key: rows if key == "length" else rows[0] for key, rows in columns.items()})

    def _encodings(self, text, text_pair, *, add_special_tokens: bool = True, padding=False, truncation=None,
                   max_length=None, is_split_into_words=False, pad_to_multiple_of=None,
                   padding_side=None) -> tuple[list[Encoding], bool]:
        """The finished encodings (truncated, with special tokens, padded) and whether the input was a batch."""
        if is_split_into_words and not self.add_prefix_space:
            raise ValueError(f"{type(self).__name__} needs add_prefix_space=True for is_split_into_words=True "
                             f"(pass it to from_pretrained), since each word then starts after a space")
        firsts, batched = _as_batch("text", text, is_split_into_words)
        seconds = None
        if text_pair is not None:
            seconds, pair_batched = _as_batch("text_pair", text_pair, is_split_into_words)
            if pair_batched != batched or len(seconds) != len(firsts):
                raise ValueError(f"text_pair must match text: got {len(firsts)} text(s) and {len(seconds)} pair(s)")
        pad_to, truncate_to, strategy = self._lengths(padding, truncation, max_length, pad_to_multiple_of)

        encode = self._backend.encode_batch
        first_encodings = encode(firsts, is_pretokenized=is_split_into_words, add_special_tokens=False)
        second_encodings = (encode(seconds, is_pretokenized=is_split_into_words, add_special_tokens=False)
                            if seconds is not None else [None] * len(firsts))
        encodings = []
        for first, second in zip(first_encodings, second_encodings, strict=True):
            if strategy is not None:
                budget = truncate_to - (self.num_special_tokens_to_add(second is not None) if add_special_tokens else 0)
                if budget < 0:
                    raise ValueError(f"max_length={truncate_to} is shorter than the "
                                     f"{truncate_to - budget} special tokens {type(self).__name__} adds")
                _truncate(first, second, budget, strategy, self.truncation_side)
            encodings.append(self._processor.process(first, second, add_special_tokens))
        self._pad(encodings, pad_to, pad_to_multiple_of, padding_side or self.padding_side)
        return encodings, batched

    def _lengths(self, padding, truncation, max_length, pad_to_multiple_of):
        """(pad target: "longest", an int or None; truncation length or None; truncation strategy or None),
        resolved from the call's arguments with transformers' defaults."""
        if padding not in _PADDING:
            raise ValueError(f"padding must be one of {list(_PADDING)}, got {padding!r}")
        if truncation is not None and truncation not in _TRUNCATION:
            raise ValueError(f"truncation must be one of {list(_TRUNCATION)}, got {truncation!r}")
        if truncation is None:  # transformers: a max_length without padding means "truncate to it"
            truncation = "longest_first" if max_length is not None and padding is False else False
        padding, strategy = _PADDING[padding], _TRUNCATION[truncation]
        limit = max_length if max_length is not None else self.model_max_length
        if limit > _NO_LIMIT:  # no length given and the tokenizer has none: nothing to pad or cut to
            limit = None
            padding = None if padding == "max_length" else padding
            strategy = None
        if padding is not None and self.pad_token is None:
            raise ValueError(f"{type(self).__name__} has no pad_token to pad with; set one (tokenizer.pad_token = ...) "
                             f"or call with padding=False")
        if strategy and padding and pad_to_multiple_of and limit % pad_to_multiple_of:
            raise ValueError(f"truncation to max_length={limit} and padding to a multiple of {pad_to_multiple_of} "
                             f"conflict: choose a max_length that is a multiple of pad_to_multiple_of")
        pad_to = limit if padding == "max_length" else padding
        return pad_to, (limit if strategy else None), strategy

    def _pad(self, encodings: list[Encoding], pad_to, pad_to_multiple_of, side: str) -> None:
        if pad_to is None:
            return
        length = max((len(e.ids) for e in encodings), default=0) if pad_to == "longest" else pad_to
        if pad_to_multiple_of:
            length = -(-length // pad_to_multiple_of) * pad_to_multiple_of
        side = _check_side("padding_side", side)
        for encoding in encodings:
            encoding.pad(length, direction=side, pad_id=self.pad_token_id, pad_type_id=0, pad_token=self.pad_token)

    # ------------------------------------------------------------------ decoding

    def decode(self, token_ids, skip_special_tokens: bool = False,
               clean_up_tokenization_spaces: bool | None = None) -> str:
        """The text of a sequence of ids (a list, or a 1-D array or tensor of any framework)."""
        return self.batch_decode([_id_list(token_ids)], skip_special_tokens, clean_up_tokenization_spaces)[0]

    def batch_decode(self, sequences, skip_special_tokens: bool = False,
                     clean_up_tokenization_spaces: bool | None = None) -> list[str]:
        """The texts of a batch of id sequences (a list of lists, or a 2-D array or tensor)."""
        texts = self._backend.decode_batch([_id_list(ids) for ids in _rows(sequences)],
                                           skip_special_tokens=skip_special_tokens)
        if clean_up_tokenization_spaces is None:
            clean_up_tokenization_spaces = self.clean_up_tokenization_spaces
        return [clean_up_tokenization(t) for t in texts] if clean_up_tokenization_spaces else texts

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name_or_path={self.name_or_path!r}, vocab_size={self.vocab_size}, "
                f"model_max_length={self.model_max_length}, padding_side={self.padding_side!r}, "
                f"add_prefix_space={self.add_prefix_space}, special_tokens={self.special_tokens_map})")


# ---------------------------------------------------------------------- helpers


def _load_backend(vocab_file, merges_file, tokenizer_file, add_prefix_space: bool) -> Tokenizer:
    """The tokenizers pipeline without post-processor: the class adds special tokens itself (see module doc)."""
    if tokenizer_file is not None:
        backend = Tokenizer.from_file(os.fspath(tokenizer_file))
    elif vocab_file is not None and merges_file is not None:
        backend = Tokenizer(BPE.from_file(os.fspath(vocab_file), os.fspath(merges_file),
                                          continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False))
    else:
        raise ValueError("pass tokenizer_file, or both vocab_file and merges_file")
    # The class's settings, not the file's, decide the byte-level steps, so both kinds of files behave the same.
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space, trim_offsets=True)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = None
    backend.no_truncation()
    backend.no_padding()
    return backend


def _added_token(value, *, lstrip: bool = False, special: bool | None = None) -> AddedToken:
    """An AddedToken from a string (taking ``lstrip``), a dict as transformers saves them, or an AddedToken;
    ``special`` (when given) overrides the flag, since a role's token is always special."""
    if isinstance(value, AddedToken):
        value = value.__getstate__()
    elif isinstance(value, str):
        value = {"content": value, "lstrip": lstrip, "normalized": False, "special": True}
    if not isinstance(value, dict) or not isinstance(value.get("content"), str):
        raise TypeError(f"a token must be a str, a dict with 'content' or a tokenizers.AddedToken, got {value!r}")
    fields = {k: value[k] for k in ("single_word", "lstrip", "rstrip", "normalized", "special") if k in value}
    if special is not None:
        fields["special"] = special
    return AddedToken(value["content"], **fields)


def _check_side(name: str, side: str) -> str:
    if side not in ("left", "right"):
        raise ValueError(f"{name} must be 'left' or 'right', got {side!r}")
    return side


def _is_text(value, is_split_into_words: bool) -> bool:
    if is_split_into_words:
        return isinstance(value, (list, tuple)) and all(isinstance(word, str) for word in value)
    return isinstance(value, str)


def _as_batch(name: str, value, is_split_into_words: bool) -> tuple[list, bool]:
    """(list of inputs, whether ``value`` was a batch); a single input becomes a batch of one."""
    if _is_text(value, is_split_into_words) and not (is_split_into_words and not value):
        return [value], False
    if isinstance(value, (list, tuple)) and all(_is_text(v, is_split_into_words) for v in value):
        return list(value), True
    wanted = ("a list of words, or a batch (list) of such lists" if is_split_into_words
              else "a str, or a batch (list) of str")
    raise ValueError(f"{name} must be {wanted}, got {type(value).__name__}")


def _truncate(first: Encoding, second: Encoding | None, budget: int, strategy: str, side: str) -> None:
    """Shorten the encodings in place to at most ``budget`` tokens together, by the tokenizers library's rules."""
    n1, n2 = len(first.ids), len(second.ids) if second is not None else 0
    excess = n1 + n2 - budget
    if excess <= 0:
        return
    if strategy == "longest_first" and second is not None:
        # Keep the shorter one whole when the longer can absorb the cut, else split the budget evenly.
        short, long = sorted((n1, n2))
        long = max(short, budget - short)
        if short + long > budget:
            short, long = budget // 2, budget // 2 + budget % 2
        keep1, keep2 = (long, short) if n1 > n2 else (short, long)
        first.truncate(keep1, direction=side)
        second.truncate(keep2, direction=side)
        return
    if strategy == "only_second" and second is None:
        raise ValueError("truncation='only_second' needs a text_pair")
    target = second if strategy == "only_second" else first
    if len(target.ids) <= excess:
        which = "second" if target is second else "first"
        raise ValueError(f"truncation={strategy!r} cannot reach the max length: {excess} tokens must go but the "
                         f"{which} sequence has {len(target.ids)}; use truncation='longest_first'")
    target.truncate(len(target.ids) - excess, direction=side)


def _column(encoding: Encoding, key: str) -> list:
    if key == "input_ids":
        return encoding.ids
    if key == "token_type_ids":
        return encoding.type_ids
    if key == "offset_mapping":
        return encoding.offsets
    return getattr(encoding, key)


def _as_tensors(columns: dict[str, list], return_tensors: str) -> dict[str, Any]:
    if return_tensors not in _TENSOR_MAKERS:
        raise ValueError(f"return_tensors must be one of {list(_TENSOR_MAKERS)}, got {return_tensors!r}")
    module_name, make = _TENSOR_MAKERS[return_tensors]
    rows = columns["input_ids"]
    if len({len(row) for row in rows}) > 1:
        raise ValueError(f"return_tensors={return_tensors!r} needs sequences of one length, got lengths "
                         f"{sorted({len(row) for row in rows})}; pass padding=True (and truncation=True)")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise missing_framework_error(err.name or module_name, f"return_tensors={return_tensors!r}") from err
    return {key: make(module, values) for key, values in columns.items()}


def _rows(sequences) -> list:
    if hasattr(sequences, "tolist"):  # numpy, torch, jax
        return sequences.tolist()
    if hasattr(sequences, "numpy"):  # tensorflow
        return sequences.numpy().tolist()
    return list(sequences)


def _id_list(ids) -> list[int]:
    ids = _rows(ids) if not isinstance(ids, (int, np.integer)) else int(ids)
    return [ids] if isinstance(ids, int) else [int(i) for i in ids]


def _read_json(path: str | None) -> dict:
    if path is None:
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _to_json(value: dict) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
