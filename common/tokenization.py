"""Byte-level BPE tokenizers (RoBERTa, BART, OPT) on the ``tokenizers`` library, called as transformers' tokenizers.

A family subclass names its special tokens and its template (``_post_processor``); everything else lives here:
loading ``tokenizer.json`` or ``vocab.json`` + ``merges.txt`` from a folder or hub id (each file checked: a bad one is
a ``TokenizerFileError`` naming it), encoding single texts, pairs and batches with truncation, sliding windows
(``stride``) and padding, ``pad`` for data collators, added tokens, tensors for the four frameworks, decoding, and
``save_pretrained`` to files that transformers' own tokenizer classes load.

Truncation and padding are done here per call, on the encodings, rather than by configuring the shared
``tokenizers.Tokenizer``, so that one tokenizer can serve calls with different settings (threads included).
Truncation follows the ``tokenizers`` library's rules, so results equal transformers' fast tokenizers.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from tokenizers import AddedToken, Encoding, Tokenizer, decoders, pre_tokenizers
from tokenizers.models import BPE
from tokenizers.processors import PostProcessor

from .hub import HUB_ARGUMENTS, missing_files_error, resolve_optional_file
from .io import FolderSave
from .lazy import missing_framework_error

VOCAB_NAME = "vocab.json"
MERGES_NAME = "merges.txt"
TOKENIZER_NAME = "tokenizer.json"
TOKENIZER_CONFIG_NAME = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_NAME = "special_tokens_map.json"
ADDED_TOKENS_NAME = "added_tokens.json"  # {token: id} beside vocab.json in folders older transformers saved

logger = logging.getLogger(__name__)

# transformers' model_max_length when nothing sets one, and the bound above which it means "no limit".
VERY_LARGE_INTEGER = int(1e30)
_NO_LIMIT = int(1e20)

# In transformers' order, which fixes the order of ``all_special_tokens``.
SPECIAL_TOKEN_ROLES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
# The key of the list of special tokens that have no role (``add_special_tokens``, the saved files).
ADDITIONAL_SPECIAL_TOKENS = "additional_special_tokens"

_PADDING = {False: None, "do_not_pad": None, True: "longest", "longest": "longest", "max_length": "max_length"}
_TRUNCATION = {False: None, "do_not_truncate": None, True: "longest_first", "longest_first": "longest_first",
               "only_first": "only_first", "only_second": "only_second"}
# return_tensors -> (module, function making a tensor from nested lists of Python numbers). As in transformers:
# integers become int64 in numpy and torch and the framework's default integer (int32) in TensorFlow and JAX;
# floats (a regression label that pad() passes through) keep each framework's default float type.
_TENSOR_MAKERS = {
    "np": ("numpy", lambda np_, rows: _numpy_int64(np_.asarray(rows))),
    "pt": ("torch", lambda torch, rows: torch.tensor(rows)),
    "tf": ("tensorflow", lambda tf, rows: tf.constant(rows)),
    "jax": ("jax.numpy", lambda jnp, rows: jnp.asarray(rows)),
}
# The keys that padding lengthens, with the value of a padded position (None: the tokenizer's pad_token_id).
# Other keys (labels, length, ...) pass through pad() unchanged, as in transformers.
_PADDED_KEYS = {"input_ids": None, "attention_mask": 0, "token_type_ids": 0, "special_tokens_mask": 1,
                "offset_mapping": (0, 0)}


class TokenizerFileError(ValueError):
    """A tokenizer file (vocab.json, merges.txt, tokenizer.json, tokenizer_config.json, ...) that cannot be used;
    the message names the file and what is wrong with it."""


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
        additional_special_tokens: Sequence | None = None,
        name_or_path: str = "",
        **special_tokens: Any,
    ):
        unknown = sorted(set(special_tokens) - set(SPECIAL_TOKEN_ROLES))
        if unknown:
            raise TypeError(f"{type(self).__name__} got unexpected keyword arguments {unknown}")
        for name, value in (("add_prefix_space", add_prefix_space), ("trim_offsets", trim_offsets),
                            ("model_max_length", model_max_length),
                            ("clean_up_tokenization_spaces", clean_up_tokenization_spaces)):
            problem = _setting_problem(name, value)
            if problem:
                raise ValueError(f"{name} {problem}, got {value!r}")
        self.add_prefix_space = add_prefix_space
        self.trim_offsets = trim_offsets
        self.model_max_length = int(model_max_length)  # 1e30 written as a float means "no limit" too
        self.padding_side = _check_side("padding_side", padding_side)
        self.truncation_side = _check_side("truncation_side", truncation_side)
        self.clean_up_tokenization_spaces = clean_up_tokenization_spaces
        self.name_or_path = os.fspath(name_or_path)
        self._backend = _load_backend(vocab_file, merges_file, tokenizer_file, add_prefix_space)
        self._register_saved_tokens(added_tokens_decoder or {})
        self._special_tokens: dict[str, str | None] = {}
        for role in SPECIAL_TOKEN_ROLES:
            value = special_tokens.get(role, self.special_token_defaults.get(role))
            self._set_special_token(role, value, rebuild=False)
        self._additional_special_tokens: list[str] = []
        self._add_additional_special_tokens(additional_special_tokens or [], replace=True)
        self._processor = self._post_processor()
        self._warned_too_long = False  # transformers warns once per tokenizer about inputs longer than the model's

    def _register_saved_tokens(self, added_tokens_decoder: dict) -> None:
        """Add the tokens that transformers saved beside a vocab.json (tokenizer.json already holds its own), each
        at the id it was saved with."""
        for saved_id, token in sorted(added_tokens_decoder.items(), key=lambda item: int(item[0])):
            token = _added_token(token)
            self._register(token)
            got = self._backend.token_to_id(token.content)
            if got != int(saved_id):
                raise ValueError(f"added_tokens_decoder gives {token.content!r} id {saved_id}, but the vocabulary "
                                 f"gives it id {got}: added tokens must follow the vocabulary without gaps, in the "
                                 f"order of their ids")

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

        # Only the settings this class takes (file paths and name_or_path that older files hold are not settings).
        parameters = inspect.signature(cls.__init__).parameters.items()
        accepted = {name for name, p in parameters if p.kind is p.KEYWORD_ONLY} | set(SPECIAL_TOKEN_ROLES)
        accepted.discard("name_or_path")
        settings = _read_settings(optional(TOKENIZER_CONFIG_NAME), accepted)
        if "added_tokens_decoder" not in settings:  # transformers' precedence: the older files only fill in
            special_roles = set(SPECIAL_TOKEN_ROLES) | {ADDITIONAL_SPECIAL_TOKENS}
            special_map = _read_settings(optional(SPECIAL_TOKENS_MAP_NAME), special_roles)
            settings.update(special_map)
        settings.update({"name_or_path": os.fspath(name_or_path), **kwargs})
        files = {"tokenizer_file": optional(TOKENIZER_NAME)}
        if files["tokenizer_file"] is None:
            files = {"vocab_file": optional(VOCAB_NAME), "merges_file": optional(MERGES_NAME)}
            if None in files.values():
                raise missing_files_error(name_or_path, [TOKENIZER_NAME, f"{VOCAB_NAME} + {MERGES_NAME}"], **hub)
            if "added_tokens_decoder" not in settings:
                settings["added_tokens_decoder"] = _read_added_tokens(optional(ADDED_TOKENS_NAME), settings)
        return cls(**files, **settings)

    def save_pretrained(self, folder: str | os.PathLike, *, overwrite: bool = False) -> tuple[str, ...]:
        """Write vocab.json, merges.txt, tokenizer.json, tokenizer_config.json and special_tokens_map.json.

        The files are replaced together, atomically (see ``common.io``); existing tokenizer files are kept unless
        ``overwrite`` is true, and then a stale added_tokens.json (read with vocab.json) is removed too.
        Returns the paths.
        """
        contents = {
            VOCAB_NAME: json.dumps(self._backend.get_vocab(with_added_tokens=False), indent=2, sort_keys=True,
                                   ensure_ascii=False) + "\n",
            MERGES_NAME: "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in self._merges()),
            TOKENIZER_NAME: self.backend_tokenizer.to_str(pretty=True),
            TOKENIZER_CONFIG_NAME: _to_json(self._tokenizer_config()),
            SPECIAL_TOKENS_MAP_NAME: _to_json(self.special_tokens_map),
        }
        owned = {*contents, ADDED_TOKENS_NAME}
        with FolderSave(folder, owned.__contains__, overwrite=overwrite, hint="pass overwrite=True to replace them") as save:
            for name, text in contents.items():
                save.stage_text(name, text)
        return tuple(os.path.join(folder, name) for name in contents)

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

    def _set_special_token(self, role: str, value, *, rebuild: bool = True) -> int:
        """Give ``role`` the token ``value`` (None: no token); returns 1 if the token was new to the added
        vocabulary, else 0."""
        added = 0
        if value is None:
            self._special_tokens[role] = None
        else:
            token = _added_token(value, lstrip=role in self.lstrip_special_tokens, special=True)
            added = self._register(token)
            self._special_tokens[role] = token.content
        if rebuild:
            self._processor = self._post_processor()
        return added

    def _register(self, token: AddedToken) -> int:
        """Make ``token`` an added token of the backend unless it already is one (keeping the file's settings);
        returns 1 if it was new to the added vocabulary (it may still have a BPE id), else 0."""
        if token.content in {t.content for t in self._backend.get_added_tokens_decoder().values()}:
            return 0
        if token.special:
            return self._backend.add_special_tokens([token])
        return self._backend.add_tokens([token])

    def add_tokens(self, new_tokens, special_tokens: bool = False) -> int:
        """Add tokens (str or ``tokenizers.AddedToken``, one or a list) that are never split; the new ones get the
        ids after the vocabulary, so ``len(tokenizer)`` grows (resize the model's embeddings to it). Returns how
        many were new. ``special_tokens=True`` makes them special (skipped by ``skip_special_tokens``)."""
        tokens = [new_tokens] if isinstance(new_tokens, (str, AddedToken)) else list(new_tokens or [])
        for token in tokens:
            if not isinstance(token, (str, AddedToken)) or not str(token):
                raise TypeError(f"add_tokens takes non-empty str or tokenizers.AddedToken tokens, got {token!r}")
        if special_tokens:
            return self._backend.add_special_tokens(tokens)
        return self._backend.add_tokens(tokens)

    def add_special_tokens(self, special_tokens_dict: dict, replace_additional_special_tokens: bool = True) -> int:
        """Set special tokens by role (``{"pad_token": "<pad>", "additional_special_tokens": [...]}``), adding the
        ones the vocabulary lacks after it, as transformers does. Returns how many tokens were new.

        ``additional_special_tokens`` replaces the current list unless ``replace_additional_special_tokens=False``
        (tokens dropped from the list stay in the vocabulary). A token that is already an added token keeps its
        settings."""
        unknown = sorted(set(special_tokens_dict) - set(SPECIAL_TOKEN_ROLES) - {ADDITIONAL_SPECIAL_TOKENS})
        if unknown:
            raise ValueError(f"add_special_tokens got unknown keys {unknown}; the keys are "
                             f"{[*SPECIAL_TOKEN_ROLES, ADDITIONAL_SPECIAL_TOKENS]}")
        for role, value in special_tokens_dict.items():
            valid = (isinstance(value, Sequence) and not isinstance(value, str) if role == ADDITIONAL_SPECIAL_TOKENS
                     else isinstance(value, (str, AddedToken)))
            if not valid:
                wanted = "a list of tokens" if role == ADDITIONAL_SPECIAL_TOKENS else "a str or tokenizers.AddedToken"
                raise TypeError(f"{role} must be {wanted}, got {value!r}")
        added = 0
        for role, value in special_tokens_dict.items():
            if role == ADDITIONAL_SPECIAL_TOKENS:
                added += self._add_additional_special_tokens(value, replace=replace_additional_special_tokens)
            else:  # a plain string neither strips nor normalizes here (transformers' add_special_tokens)
                added += self._set_special_token(role, _added_token(value, special=True), rebuild=False)
        self._processor = self._post_processor()
        return added

    def _add_additional_special_tokens(self, tokens, *, replace: bool) -> int:
        """Register ``tokens`` as special and list them (replacing the list, or extending it); returns how many
        were new to the added vocabulary."""
        tokens = [_added_token(token, special=True) for token in tokens]
        added = sum(self._register(token) for token in tokens)
        names = [token.content for token in tokens]
        if replace and names:
            self._additional_special_tokens = names
        else:
            self._additional_special_tokens += [n for n in names if n not in self._additional_special_tokens]
        return added

    @property
    def additional_special_tokens(self) -> list[str]:
        """The special tokens that have no role (``<s>``, ``<pad>``, ... are not listed here)."""
        return list(self._additional_special_tokens)

    @property
    def additional_special_tokens_ids(self) -> list[int]:
        return [self._backend.token_to_id(token) for token in self._additional_special_tokens]

    def get_added_vocab(self) -> dict[str, int]:
        """The added tokens (special tokens included) and their ids, as transformers' ``get_added_vocab``."""
        return {token.content: i for i, token in sorted(self._backend.get_added_tokens_decoder().items())}

    @property
    def added_tokens_decoder(self) -> dict[int, AddedToken]:
        return dict(sorted(self._backend.get_added_tokens_decoder().items()))

    @property
    def special_tokens_map(self) -> dict[str, str | list[str]]:
        roles = {role: token for role, token in self._special_tokens.items() if token is not None}
        if self._additional_special_tokens:
            roles[ADDITIONAL_SPECIAL_TOKENS] = self.additional_special_tokens
        return roles

    @property
    def all_special_tokens(self) -> list[str]:
        roles = [token for token in self._special_tokens.values() if token is not None]
        return list(dict.fromkeys(roles + self._additional_special_tokens))

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

    def get_special_tokens_mask(self, token_ids_0, token_ids_1=None, already_has_special_tokens: bool = False
                                ) -> list[int]:
        """1 for each special token of ids that already hold them (as transformers' fast tokenizers, which is what
        its DataCollatorForLanguageModeling asks for), 0 for the others."""
        if not already_has_special_tokens or token_ids_1 is not None:
            raise ValueError("get_special_tokens_mask takes one sequence that already has its special tokens "
                             "(already_has_special_tokens=True); for new text call the tokenizer with "
                             "return_special_tokens_mask=True")
        special = set(self.all_special_ids)
        return [1 if token_id in special else 0 for token_id in _id_list(token_ids_0)]

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
        stride: int = 0,
        is_split_into_words: bool = False,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_tensors: str | None = None,
        return_token_type_ids: bool | None = None,
        return_attention_mask: bool | None = None,
        return_overflowing_tokens: bool = False,
        return_special_tokens_mask: bool = False,
        return_offsets_mapping: bool = False,
        return_length: bool = False,
        verbose: bool = True,
    ) -> BatchEncoding:
        """Encode a text, a batch of texts, or pairs of them, as transformers' tokenizers do.

        ``text_target`` (and ``text_pair_target``) are encoded the same way; their ``input_ids`` become ``labels``
        (or the whole result when ``text`` is None), for sequence-to-sequence training.

        ``return_overflowing_tokens=True`` with truncation returns every window of each input, consecutive windows
        sharing ``stride`` tokens, as rows of a batch, and ``overflow_to_sample_mapping`` (the input each row
        comes from). Question answering uses it with ``truncation="only_second"`` on (question, context) pairs.

        Without truncation or ``max_length``, an input longer than ``model_max_length`` is kept whole, and a
        warning (once per tokenizer; ``verbose=False`` silences it) says the model cannot take it.
        """
        if text is None and text_target is None:
            raise ValueError("pass `text` (or `text_target`) to encode")
        options = {
            "add_special_tokens": add_special_tokens, "padding": padding, "truncation": truncation,
            "max_length": max_length, "stride": stride, "is_split_into_words": is_split_into_words,
            "pad_to_multiple_of": pad_to_multiple_of, "padding_side": padding_side, "return_tensors": return_tensors,
            "return_token_type_ids": return_token_type_ids, "return_attention_mask": return_attention_mask,
            "return_overflowing_tokens": return_overflowing_tokens,
            "return_special_tokens_mask": return_special_tokens_mask,
            "return_offsets_mapping": return_offsets_mapping, "return_length": return_length, "verbose": verbose,
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
                return_overflowing_tokens, return_special_tokens_mask, return_offsets_mapping, return_length, verbose,
                **options) -> BatchEncoding:
        encodings, batched = self._encodings(text, text_pair, **options)
        sample_of_row = list(range(len(encodings)))
        if return_overflowing_tokens:  # every window is a row; the output is a batch even for one text
            sample_of_row = [i for i, e in enumerate(encodings) for _ in range(1 + len(e.overflowing))]
            encodings, batched = [row for e in encodings for row in (e, *e.overflowing)], True
        if verbose:
            self._warn_if_too_long(encodings, options)
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
        if return_overflowing_tokens:
            columns["overflow_to_sample_mapping"] = sample_of_row
        if return_tensors is not None:
            return BatchEncoding(_as_tensors(columns, return_tensors))
        if batched:
            return BatchEncoding(columns)
        # transformers keeps "length" a list even for one text.
        return BatchEncoding({key: rows if key == "length" else rows[0] for key, rows in columns.items()})

    def _warn_if_too_long(self, encodings: list[Encoding], options: dict) -> None:
        """transformers' warning, once per tokenizer, for an input longer than model_max_length that the call
        neither truncates nor bounds with a max_length (the model would fail on it)."""
        bounded = (options.get("max_length") is not None or _TRUNCATION.get(options.get("truncation"))
                   or _PADDING.get(options.get("padding")) == "max_length")
        if self._warned_too_long or bounded:
            return
        too_long = next((len(e.ids) for e in encodings if len(e.ids) > self.model_max_length), None)
        if too_long is not None and self.model_max_length > 0:
            logger.warning("Token indices sequence length is longer than the specified maximum sequence length for "
                           "this model (%d > %d). Running this sequence through the model will result in indexing "
                           "errors", too_long, self.model_max_length)
            self._warned_too_long = True

    def _encodings(self, text, text_pair, *, add_special_tokens: bool = True, padding=False, truncation=None,
                   max_length=None, stride: int = 0, is_split_into_words=False, pad_to_multiple_of=None,
                   padding_side=None) -> tuple[list[Encoding], bool]:
        """The finished encodings (truncated, with special tokens, padded) and whether the input was a batch;
        the windows after the first of a truncated input are in its ``overflowing``."""
        if is_split_into_words and not self.add_prefix_space:
            raise ValueError(f"{type(self).__name__} needs add_prefix_space=True for is_split_into_words=True "
                             f"(pass it to from_pretrained), since each word then starts after a space")
        firsts, batched = _as_batch("text", text, is_split_into_words)
        seconds = None
        if text_pair is not None:
            seconds, pair_batched = _as_batch("text_pair", text_pair, is_split_into_words)
            if pair_batched != batched or len(seconds) != len(firsts):
                raise ValueError(f"text_pair must match text: got {len(firsts)} text(s) and {len(seconds)} pair(s)")
            _check_encodable("text_pair", seconds, pair_batched)
        _check_encodable("text", firsts, batched)
        if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or stride < 0:
            raise ValueError(f"stride must be a non-negative integer, got {stride!r}")
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
                _truncate(first, second, budget, strategy, self.truncation_side, int(stride))
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

    def pad(self, encoded_inputs, padding: bool | str = True, max_length: int | None = None,
            pad_to_multiple_of: int | None = None, padding_side: str | None = None,
            return_attention_mask: bool | None = None, return_tensors: str | None = None,
            verbose: bool = True) -> BatchEncoding:
        """Pad encoded inputs as transformers' ``tokenizer.pad`` does (what its data collators call).

        ``encoded_inputs``: one encoding (a dict of lists), a batch as a dict of lists of rows, or a list of such
        dicts (what a DataLoader hands its collate function); values may be lists or numpy / torch / TF / JAX
        arrays, and then tensors of the same kind come back unless ``return_tensors`` says otherwise. Padding:
        ``input_ids`` gets ``pad_token_id``, ``attention_mask`` 0 (it is created when missing), ``token_type_ids``
        0, ``special_tokens_mask`` 1, ``offset_mapping`` (0, 0); other keys (``labels``, ...) pass unchanged.
        Nothing is truncated. ``verbose`` is accepted for transformers' signature; padding has nothing to warn of.
        """
        given = _as_columns(encoded_inputs)
        if return_tensors is None:
            return_tensors = _tensor_kind(given["input_ids"])
        columns = {key: _plain(value) for key, value in given.items()}
        ids = columns["input_ids"]
        if not ids:  # nothing to pad: the input as it is (with an empty mask only when asked, as transformers)
            return BatchEncoding({**columns, **({"attention_mask": []} if return_attention_mask else {})})
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        batched = not isinstance(ids[0], (int, np.integer))
        rows = columns if batched else {key: [value] for key, value in columns.items()}
        _check_rows(rows)
        if return_attention_mask and "attention_mask" not in rows:
            rows["attention_mask"] = [[1] * len(row) for row in rows["input_ids"]]
        pad_to, _, _ = self._lengths(padding, False, max_length, pad_to_multiple_of)
        if pad_to is not None:
            length = max(len(row) for row in rows["input_ids"]) if pad_to == "longest" else pad_to
            if pad_to_multiple_of:
                length = -(-length // pad_to_multiple_of) * pad_to_multiple_of
            side = _check_side("padding_side", padding_side or self.padding_side)
            for key, fill in _PADDED_KEYS.items():
                fill = self.pad_token_id if key == "input_ids" else fill
                if key in rows:
                    rows[key] = [_pad_row(row, length, fill, side) for row in rows[key]]
        if not batched:
            rows = {key: value[0] for key, value in rows.items()}
        if return_tensors is not None:
            return BatchEncoding(_as_tensors(rows, return_tensors))
        return BatchEncoding(rows)

    # ------------------------------------------------------------------ decoding

    def decode(self, token_ids, skip_special_tokens: bool = False,
               clean_up_tokenization_spaces: bool | None = None) -> str:
        """The text of a sequence of ids (a list, or a 1-D array or tensor of any framework)."""
        return self.batch_decode([_id_list(token_ids)], skip_special_tokens, clean_up_tokenization_spaces)[0]

    def batch_decode(self, sequences, skip_special_tokens: bool = False,
                     clean_up_tokenization_spaces: bool | None = None) -> list[str]:
        """The texts of a batch of id sequences (a list of lists, or a 2-D array or tensor)."""
        rows = [_id_list(ids) for ids in _rows(sequences)]
        self._check_ids(rows)
        texts = self._backend.decode_batch(rows, skip_special_tokens=skip_special_tokens)
        if clean_up_tokenization_spaces is None:
            clean_up_tokenization_spaces = self.clean_up_tokenization_spaces
        return [clean_up_tokenization(t) for t in texts] if clean_up_tokenization_spaces else texts

    def _check_ids(self, rows: list[list[int]]) -> None:
        """Ids outside the vocabulary have no text (the tokenizers library fails on negative ones and drops the
        others silently): name the first one."""
        size = len(self)
        for r, row in enumerate(rows):
            if not row or 0 <= min(row) <= max(row) < size:
                continue
            bad = next(i for i, token_id in enumerate(row) if not 0 <= token_id < size)
            where = f"position {bad}" + (f" of sequence {r}" if len(rows) > 1 else "")
            raise ValueError(f"token id {row[bad]} at {where} is outside the vocabulary (ids 0..{size - 1}); a "
                             f"model whose embedding is larger than len(tokenizer) can produce such ids: drop them "
                             f"(or mask their logits) before decoding")

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name_or_path={self.name_or_path!r}, vocab_size={self.vocab_size}, "
                f"model_max_length={self.model_max_length}, padding_side={self.padding_side!r}, "
                f"add_prefix_space={self.add_prefix_space}, special_tokens={self.special_tokens_map})")


# ---------------------------------------------------------------------- helpers


def _load_backend(vocab_file, merges_file, tokenizer_file, add_prefix_space: bool) -> Tokenizer:
    """The tokenizers pipeline without post-processor: the class adds special tokens itself (see module doc)."""
    if tokenizer_file is not None:
        backend = _read_tokenizer_json(os.fspath(tokenizer_file))
    elif vocab_file is not None and merges_file is not None:
        vocab = _read_vocab(os.fspath(vocab_file))
        merges = _read_merges(os.fspath(merges_file), vocab, os.path.basename(vocab_file))
        backend = Tokenizer(BPE(vocab, merges, continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False))
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


def _check_encodable(name: str, inputs: list, batched: bool) -> None:
    """A lone surrogate (half of a UTF-16 pair, e.g. from a JSON escape cut in two) has no UTF-8 form, so the
    tokenizer cannot read it: say which input and character, rather than the tokenizers library's TypeError."""
    for i, item in enumerate(inputs):
        for j, piece in enumerate([item] if isinstance(item, str) else item):
            if piece.isascii():
                continue
            try:
                piece.encode("utf-8")
            except UnicodeEncodeError as err:
                where = name + (f"[{i}]" if batched else "") + ("" if isinstance(item, str) else f"[{j}]")
                raise ValueError(f"{where} holds a lone surrogate {piece[err.start]!r} at character {err.start}, "
                                 f"which is not valid Unicode text; repair or drop it before tokenizing (e.g. "
                                 f"text.encode('utf-8', 'replace').decode('utf-8'))") from None


def _truncate(first: Encoding, second: Encoding | None, budget: int, strategy: str, side: str, stride: int) -> None:
    """Shorten the encodings in place to at most ``budget`` tokens together, by the tokenizers library's rules;
    what is cut goes to their ``overflowing`` windows, each repeating ``stride`` tokens of the window before."""
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
        _cut(first, keep1, stride, side, "first")
        _cut(second, keep2, stride, side, "second")
        return
    if strategy == "only_second" and second is None:
        raise ValueError("truncation='only_second' needs a text_pair")
    target = second if strategy == "only_second" else first
    if len(target.ids) <= excess:
        which = "second" if target is second else "first"
        raise ValueError(f"truncation={strategy!r} cannot reach the max length: {excess} tokens must go but the "
                         f"{which} sequence has {len(target.ids)}; use truncation='longest_first'")
    _cut(target, len(target.ids) - excess, stride, side, "second" if target is second else "first")


def _cut(encoding: Encoding, keep: int, stride: int, side: str, which: str) -> None:
    """Keep ``keep`` tokens of ``encoding``; windows of the rest overlap by ``stride`` (which must be shorter)."""
    if keep >= len(encoding.ids):
        return
    if 0 < keep <= stride:
        raise ValueError(f"stride={stride} must be smaller than the {keep} tokens of the {which} sequence that fit "
                         f"in each window (max_length less the special tokens and any other sequence); use a smaller "
                         f"stride or a larger max_length")
    encoding.truncate(keep, stride=stride, direction=side)


def _as_columns(encoded_inputs) -> dict:
    """A dict of columns from what ``pad`` takes: a dict, or a list of dicts with the same keys."""
    if isinstance(encoded_inputs, Mapping):
        columns = dict(encoded_inputs)
    elif isinstance(encoded_inputs, (list, tuple)) and encoded_inputs and all(
            isinstance(example, Mapping) for example in encoded_inputs):
        keys = list(encoded_inputs[0])
        for i, example in enumerate(encoded_inputs):
            if set(example) != set(keys):
                raise ValueError(f"pad needs examples with the same keys: example 0 has {sorted(keys)}, example {i} "
                                 f"has {sorted(example)}")
        columns = {key: [example[key] for example in encoded_inputs] for key in keys}
    else:
        raise TypeError(f"pad takes an encoding (a dict such as a tokenizer call returns) or a non-empty list of "
                        f"them, got {type(encoded_inputs).__name__}")
    if "input_ids" not in columns:
        raise ValueError(f"pad needs 'input_ids' among the keys, got {list(columns)}")
    return columns


def _tensor_kind(value) -> str | None:
    """The return_tensors name of a (batch of) numpy / torch / TF / JAX array(s), else None."""
    candidates = [value, *(value[:1] if isinstance(value, (list, tuple)) else [])]
    for candidate in candidates:
        if getattr(candidate, "ndim", 0):  # an array, not a Python or numpy scalar
            package = type(candidate).__module__.split(".")[0]
            return {"numpy": "np", "torch": "pt", "tensorflow": "tf", "jax": "jax", "jaxlib": "jax"}.get(package)
    return None


def _plain(value):
    """Python lists and numbers from arrays or tensors of any framework (nested in lists too)."""
    if hasattr(value, "tolist") or hasattr(value, "numpy"):
        return _rows(value)
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, (int, float, str)) for v in value):
            return value
        return [_plain(v) for v in value]
    return value


def _check_rows(rows: dict[str, list]) -> None:
    """Every key holds one row per example, and the keys that padding lengthens match input_ids token for token."""
    lengths = [len(row) for row in rows["input_ids"]]
    for key, values in rows.items():
        if not isinstance(values, list) or len(values) != len(lengths):
            count = len(values) if isinstance(values, list) else type(values).__name__
            raise ValueError(f"pad got {len(lengths)} input_ids rows but {count} for {key!r}")
        if key in _PADDED_KEYS and [len(row) for row in values] != lengths:
            raise ValueError(f"pad needs {key!r} rows as long as their input_ids rows, got lengths "
                             f"{[len(row) for row in values]} for {lengths}")


def _pad_row(row: list, length: int, fill, side: str) -> list:
    missing = length - len(row)
    if missing <= 0:
        return row
    return [fill] * missing + list(row) if side == "left" else list(row) + [fill] * missing


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
    for key, values in columns.items():
        lengths = sorted({len(row) for row in values if isinstance(row, (list, tuple))})
        if len(lengths) > 1:
            raise ValueError(f"return_tensors={return_tensors!r} needs the rows of {key!r} to have one length, got "
                             f"lengths {lengths}; pass padding=True (and truncation=True)")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise missing_framework_error(err.name or module_name, f"return_tensors={return_tensors!r}") from err
    tensors = {}
    for key, values in columns.items():
        try:
            tensors[key] = make(module, values)
        except (TypeError, ValueError) as err:
            raise ValueError(f"cannot make a return_tensors={return_tensors!r} tensor of {key!r}: {err}") from err
    return tensors


def _numpy_int64(array: np.ndarray) -> np.ndarray:
    return array.astype(np.int64, copy=False) if array.dtype.kind in "iu" else array


def _rows(sequences) -> list:
    if hasattr(sequences, "tolist"):  # numpy, torch, jax
        return sequences.tolist()
    if hasattr(sequences, "numpy"):  # tensorflow
        return sequences.numpy().tolist()
    return list(sequences)


def _id_list(ids) -> list[int]:
    ids = _rows(ids) if not isinstance(ids, (int, np.integer)) else int(ids)
    return [ids] if isinstance(ids, int) else [int(i) for i in ids]


# ---------------------------------------------------------------------- reading the files, strictly
# A wrong file must not give a tokenizer that quietly tokenizes differently (an empty merges.txt would split every
# word into bytes), so each file is checked and an error names it and says what is wrong.

_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
               bool: "true/false", type(None): "null"}


def _read_text(path: str) -> str:
    with open(path, "rb") as f:
        data = f.read()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise TokenizerFileError(f"{path} is not UTF-8 text (byte {data[err.start]:#04x} at offset {err.start}); "
                                 f"tokenizer files are UTF-8: convert it, or replace it with the original "
                                 f"file") from None


def _read_json_object(path: str, holds: str) -> dict:
    text = _read_text(path)
    if not text.strip():
        raise TokenizerFileError(f"{path} is empty; it should hold {holds}")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise TokenizerFileError(f"{path} is not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}"
                                 ) from None
    if not isinstance(value, dict):
        raise TokenizerFileError(f"{path} should hold a JSON object ({holds}), got "
                                 f"{_JSON_TYPES.get(type(value), type(value).__name__)}")
    return value


def _read_vocab(path: str) -> dict[str, int]:
    vocab = _read_json_object(path, "the vocabulary, {token: id}")
    if not vocab:
        raise TokenizerFileError(f"{path} holds no tokens; it should map each token to its id")
    for token, token_id in vocab.items():
        if isinstance(token_id, bool) or not isinstance(token_id, int) or token_id < 0:
            raise TokenizerFileError(f"{path}: the id of {token!r} must be a non-negative integer, got "
                                     f"{token_id!r}")
    if len(set(vocab.values())) < len(vocab):
        seen: dict[int, str] = {}
        for token, token_id in vocab.items():
            if token_id in seen:
                raise TokenizerFileError(f"{path} gives id {token_id} to both {seen[token_id]!r} and {token!r}")
            seen[token_id] = token
    return vocab


def _read_merges(path: str, vocab: dict[str, int], vocab_name: str) -> list[tuple[str, str]]:
    """The merges of a merges.txt: an optional "#version" line, then one "left right" pair a line."""
    lines = [line.removesuffix("\r") for line in _read_text(path).split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    start = 1 if lines and lines[0].startswith("#version") else 0
    if len(lines) <= start:
        raise TokenizerFileError(f"{path} holds no merges; without them every word would be split into single "
                                 f"bytes. Use the merges.txt published with {vocab_name}")
    merges = []
    for number, line in enumerate(lines[start:], start=start + 1):
        pair = line.split(" ")
        if len(pair) != 2 or not all(pair):
            raise TokenizerFileError(f"{path} line {number} should be two tokens separated by one space, got "
                                     f"{line!r}")
        for token in (*pair, pair[0] + pair[1]):
            if token not in vocab:
                raise TokenizerFileError(f"{path} line {number} merges {pair[0]!r} and {pair[1]!r}, but "
                                         f"{vocab_name} has no token {token!r}: the two files do not belong "
                                         f"together")
        merges.append((pair[0], pair[1]))
    return merges


def _read_tokenizer_json(path: str) -> Tokenizer:
    text = _read_text(path)
    if not text.strip():
        raise TokenizerFileError(f"{path} is empty; it should hold a tokenizers pipeline (with a BPE model)")
    try:
        backend = Tokenizer.from_str(text)
    except Exception as err:  # the tokenizers library raises plain Exception for every parse error
        raise TokenizerFileError(f"{path} is not a valid tokenizer.json: {err}") from None
    if not isinstance(backend.model, BPE):
        raise TokenizerFileError(f"{path} holds a {type(backend.model).__name__} model; this tokenizer needs a "
                                 f"byte-level BPE model (the tokenizer.json of a RoBERTa, BART, OPT or GPT-2 "
                                 f"checkpoint)")
    model = json.loads(backend.model.__getstate__())
    for part in ("vocab", "merges"):
        if not model.get(part):
            raise TokenizerFileError(f"{path} has an empty model.{part}; a byte-level BPE needs its vocabulary "
                                     f"and merges")
    return backend


def _read_settings(path: str | None, accepted: set[str]) -> dict:
    """The settings of tokenizer_config.json or special_tokens_map.json that the class takes, checked."""
    if path is None:
        return {}
    settings = _read_json_object(path, "the tokenizer's settings")
    settings = {key: value for key, value in settings.items() if key in accepted}
    for key, value in settings.items():
        problem = _setting_problem(key, value)
        if problem:
            raise TokenizerFileError(f"{path}: {key!r} {problem}, got {value!r}")
    return settings


def _setting_problem(key: str, value) -> str | None:
    """What is wrong with one setting read from a file, or None."""
    if key in SPECIAL_TOKEN_ROLES:
        return None if value is None or _is_token(value) else "must be a token (a string or a dict with 'content')"
    if key == ADDITIONAL_SPECIAL_TOKENS:
        ok = value is None or (isinstance(value, list) and all(_is_token(v) for v in value))
        return None if ok else "must be a list of tokens"
    if key == "added_tokens_decoder":
        ok = isinstance(value, dict) and all(
            isinstance(i, str) and i.isdigit() and _is_token(t) and not isinstance(t, str) for i, t in value.items())
        return None if ok else "must map each id (a string of digits) to a token dict with 'content'"
    if key == "model_max_length":
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = number and math.isfinite(value) and value >= 0 and float(value).is_integer()
        return None if ok else "must be a non-negative integer"
    if key in ("padding_side", "truncation_side"):
        return None if value in ("left", "right") else "must be 'left' or 'right'"
    if key in ("add_prefix_space", "trim_offsets", "clean_up_tokenization_spaces"):
        return None if isinstance(value, bool) else "must be true or false"
    return None


def _is_token(value) -> bool:
    return isinstance(value, str) or (isinstance(value, dict) and isinstance(value.get("content"), str))


def _read_added_tokens(path: str | None, settings: dict) -> dict[str, dict]:
    """added_tokens.json ({token: id}, older transformers) as an added_tokens_decoder; tokens that a role or the
    additional special tokens name are special."""
    if path is None:
        return {}
    tokens = _read_json_object(path, "the added tokens, {token: id}")
    special_values = [settings.get(role) for role in SPECIAL_TOKEN_ROLES] + list(
        settings.get(ADDITIONAL_SPECIAL_TOKENS) or [])
    special = {v if isinstance(v, str) else v["content"] for v in special_values if v is not None}
    decoder = {}
    for token, token_id in tokens.items():
        if isinstance(token_id, bool) or not isinstance(token_id, int) or token_id < 0:
            raise TokenizerFileError(f"{path}: the id of {token!r} must be a non-negative integer, got {token_id!r}")
        decoder[str(token_id)] = {"content": token, "special": token in special, "normalized": token not in special}
    return decoder


def _to_json(value: dict) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
