"""The PyTorch StaticCache: a prompt written in one call, then single tokens, gives the logits of one full pass.

Tiny random models of every PyTorch decoder that generation drives (OPT in both layouts, BART seq2seq and causal,
RoBERTa and RoBERTa-PreLayerNorm causal). The batch has an unpadded row and a left-padded one; padded positions
are left out of the comparisons (their fully masked attention is uniform over whatever keys the call sees).
"""

import pytest

import rosettazoo.bart as bart
import rosettazoo.opt as opt
import rosettazoo.roberta as roberta
from rosettazoo.common.cache import StaticCache
from tests.harness import assert_outputs_close, randomize

torch = pytest.importorskip("torch")

torch.set_num_threads(1)

PAD = 1
PROMPT, STEPS = 4, 3  # the prompt's tokens go in one call, then one token per call
LENGTH = PROMPT + STEPS
MAX_LENGTH = LENGTH + 2  # slots never written must stay out of sight
OPT_TINY = {"vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "ffn_dim": 37,
            "max_position_embeddings": 40}
OPT_LAYOUTS = {"opt-125m": {}, "opt-350m": {"do_layer_norm_before": False, "word_embed_proj_dim": 16}}
BART_TINY = {"vocab_size": 99, "d_model": 32, "encoder_layers": 2, "decoder_layers": 2, "encoder_attention_heads": 4,
             "decoder_attention_heads": 4, "encoder_ffn_dim": 37, "decoder_ffn_dim": 37,
             "max_position_embeddings": 40}
ROBERTA_TINY = {"vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
                "intermediate_size": 37, "max_position_embeddings": 40, "is_decoder": True}


def decoder_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Row 0 unpadded, row 1 left-padded by two."""
    ids = torch.randint(3, 99, (2, LENGTH), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    ids[1, :2], mask[1, :2] = PAD, 0
    return ids, mask


def slot_mask(mask: torch.Tensor) -> torch.Tensor:
    """The mask over every cache slot: the rows' padding, then ones for the slots still to come."""
    return torch.cat([mask, torch.ones((mask.shape[0], MAX_LENGTH - mask.shape[1]), dtype=mask.dtype)], dim=1)


def static_logits(step, cache: StaticCache, ids: torch.Tensor) -> tuple[torch.Tensor, StaticCache]:
    """The prompt in one call, then one token per call; ``step(ids, cache)`` returns the model's output."""
    logits = []
    for start, stop in [(0, PROMPT), *((t, t + 1) for t in range(PROMPT, LENGTH))]:
        out = step(ids[:, start:stop], cache)
        assert isinstance(out.past_key_values, StaticCache)
        cache = out.past_key_values
        logits.append(out.logits)
    return torch.cat(logits, dim=1), cache


def assert_real_close(expected, actual, mask, label: str) -> None:
    real = mask[..., None].bool()
    assert_outputs_close(expected.masked_fill(~real, 0), actual.masked_fill(~real, 0), label=label)


def assert_filled(cache: StaticCache) -> None:
    assert cache.index.dtype == torch.int64 and cache.index.dim() == 0 and int(cache.index) == LENGTH
    assert all(isinstance(tensor, torch.Tensor) for layer in cache.layers for tensor in layer)
    assert torch.all(cache.layers[0][0][:, :, LENGTH:] == 0)  # unwritten slots untouched


def causal_lm_passes(model, **extra) -> tuple[torch.Tensor, torch.Tensor, StaticCache]:
    """(full-pass logits, static-step logits, the cache after the steps) of a causal LM on ``decoder_batch()``."""
    ids, mask = decoder_batch()
    slots = slot_mask(mask)
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=mask, **extra).logits
        logits, cache = static_logits(
            lambda tokens, cache: model(input_ids=tokens, attention_mask=slots, past_key_values=cache, **extra),
            model.init_cache(2, MAX_LENGTH, **_encoder_outputs(extra)), ids)
    assert_filled(cache)
    return full, logits, cache


def check_causal_lm(model, label: str, **extra) -> None:
    """Static steps vs a full pass, and the left-padded row vs its real tokens alone."""
    full, logits, _ = causal_lm_passes(model, **extra)
    ids, mask = decoder_batch()
    assert_real_close(full, logits, mask, f"{label}: static steps vs full pass")
    with torch.no_grad():
        alone = model(input_ids=ids[1:, 2:], **{k: v[1:] for k, v in extra.items()}).logits
    assert_outputs_close(alone[0], logits[1, 2:], label=f"{label}: left-padded row vs its tokens alone")


def _encoder_outputs(extra: dict) -> dict:
    states = extra.get("encoder_hidden_states")
    return {} if states is None else {"encoder_outputs": states}


def check_errors(model, max_slots: int, what: str) -> None:
    ids, _ = decoder_batch()
    too_many = f"a cache of {max_slots + 1} slots exceeds the {max_slots} positions the model allows \\({what}\\)"
    with pytest.raises(ValueError, match=too_many):
        model.init_cache(2, max_slots + 1)
    with pytest.raises(ValueError, match="writing 7 more would overflow it .*: 0 are already filled"):
        model(input_ids=ids, past_key_values=model.init_cache(2, LENGTH - 1))
    cache = model(input_ids=ids, past_key_values=model.init_cache(2, LENGTH)).past_key_values
    with pytest.raises(ValueError, match="writing 1 more would overflow it .*: 7 are already filled"):
        model(input_ids=ids[:, :1], past_key_values=cache)
    with pytest.raises(ValueError, match=f"attention_mask must cover all {MAX_LENGTH} cache slots"):
        model(input_ids=ids, attention_mask=torch.ones_like(ids), past_key_values=model.init_cache(2, MAX_LENGTH))


# ---------------------------------------------------------------------------------------------------- OPT


@pytest.mark.parametrize("layout", OPT_LAYOUTS)
def test_opt(layout):
    model = randomize(opt.OPTForCausalLM(opt.OPTConfig(**OPT_TINY, **OPT_LAYOUTS[layout])), buffers=True).eval()
    check_causal_lm(model, layout)
    check_errors(model, 40, "max_position_embeddings")


def test_opt_compiled_step_compiles_once():
    """The index is a tensor and writes are tensor-indexed: advancing it does not recompile the step."""
    model = randomize(opt.OPTForCausalLM(opt.OPTConfig(**OPT_TINY)), buffers=True).eval()
    ids, mask = decoder_batch()
    slots = slot_mask(mask)

    def step(tokens, cache):
        out = model(input_ids=tokens, attention_mask=slots, past_key_values=cache)
        return out.logits, out.past_key_values

    compiled = torch.compile(step, backend="eager", dynamic=False)
    torch._dynamo.reset()
    with torch.no_grad(), torch._dynamo.config.patch(error_on_recompile=True):
        cache = model.init_cache(2, MAX_LENGTH)
        cache = model(input_ids=ids[:, :PROMPT], attention_mask=slots, past_key_values=cache).past_key_values
        logits = []
        for t in range(PROMPT, LENGTH):
            step_logits, cache = compiled(ids[:, t:t + 1], cache)
            logits.append(step_logits)
        full = model(input_ids=ids, attention_mask=mask).logits
    assert_real_close(full[:, PROMPT:], torch.cat(logits, dim=1), mask[:, PROMPT:], "compiled steps vs full pass")
    assert int(cache.index) == LENGTH


# ---------------------------------------------------------------------------------------------------- BART


def bart_model(head: str):
    return randomize(getattr(bart, f"Bart{head}")(bart.BartConfig(**BART_TINY)), buffers=True).eval()


def test_bart_seq2seq():
    """BART numbers decoder positions by slot, not by mask, so a left-padded row is not its tokens alone: only the
    static steps vs the full pass are compared."""
    model = bart_model("ForConditionalGeneration")
    ids, mask = decoder_batch()
    generator = torch.Generator().manual_seed(3)
    encoder_ids = torch.randint(3, 99, (2, 6), generator=generator)
    encoder_mask = torch.ones_like(encoder_ids)
    encoder_ids[1, 4:], encoder_mask[1, 4:] = PAD, 0
    slots = slot_mask(mask)
    with torch.no_grad():
        encoded = model.get_encoder()(encoder_ids, encoder_mask)
        full = model(attention_mask=encoder_mask, decoder_input_ids=ids, decoder_attention_mask=mask,
                     encoder_outputs=encoded, use_cache=True)
        cache = model.init_cache(2, MAX_LENGTH, encoded)
        assert [len(layer) for layer in cache.layers] == [4, 4]
        assert_outputs_close(full.past_key_values[0][2:], cache.layers[0][2:], label="cross keys computed once")
        logits, cache = static_logits(
            lambda tokens, cache: model(attention_mask=encoder_mask, decoder_input_ids=tokens,
                                        decoder_attention_mask=slots, encoder_outputs=encoded, past_key_values=cache),
            cache, ids)
    assert_real_close(full.logits, logits, mask, "BART seq2seq: static steps vs full pass")
    assert_filled(cache)
    assert [len(layer) for layer in cache.layers] == [4, 4]
    with pytest.raises(ValueError, match="a cache of 41 slots exceeds the 40 positions"):
        model.init_cache(2, 41, encoded)
    with pytest.raises(ValueError, match="encoder output has batch size 2 but the decoder input has batch size 3"):
        model.init_cache(3, MAX_LENGTH, encoded.last_hidden_state)


def test_bart_causal_lm():
    """With and without cross-attention; positions by slot, as in test_bart_seq2seq."""
    model = bart_model("ForCausalLM")
    mask = decoder_batch()[1]
    encoder_states = torch.randn((2, 5, 32), generator=torch.Generator().manual_seed(5))
    for extra in ({}, {"encoder_hidden_states": encoder_states}):
        full, logits, cache = causal_lm_passes(model, **extra)
        assert_real_close(full, logits, mask, f"BartForCausalLM, cross={bool(extra)}: static steps vs full pass")
        assert [len(layer) for layer in cache.layers] == [2 + 2 * bool(extra)] * 2
    check_errors(model, 40, "max_position_embeddings")


# ---------------------------------------------------------------------------------------------------- RoBERTa


def roberta_model(family: str, **overrides):
    config = getattr(roberta, f"{family}Config")(**{**ROBERTA_TINY, **overrides})
    return randomize(getattr(roberta, f"{family}ForCausalLM")(config), buffers=True).eval()


@pytest.mark.parametrize("family", ["Roberta", "RobertaPreLayerNorm"])
def test_roberta_causal_lm(family):
    model = roberta_model(family)
    check_causal_lm(model, family)
    # Positions start after padding_idx: 40 rows hold 38 positions.
    check_errors(model, 38, "max_position_embeddings - pad_token_id - 1")


@pytest.mark.parametrize("position_embedding_type", ["relative_key", "relative_key_query"])
def test_roberta_relative_positions(position_embedding_type):
    """Distances count from the query's slot (index + i); without padding they are the full pass's."""
    model = roberta_model("Roberta", position_embedding_type=position_embedding_type)
    ids, _ = decoder_batch()
    ids = ids[:1]
    with torch.no_grad():
        full = model(input_ids=ids).logits
        logits, _ = static_logits(lambda tokens, cache: model(input_ids=tokens, past_key_values=cache),
                                  model.init_cache(1, MAX_LENGTH), ids)
    assert_outputs_close(full, logits, label=f"{position_embedding_type}: static steps vs full pass")


def test_roberta_cross_attention():
    model = roberta_model("Roberta", add_cross_attention=True)
    encoder_states = torch.randn((2, 5, 32), generator=torch.Generator().manual_seed(5))
    check_causal_lm(model, "RoBERTa with cross-attention", encoder_hidden_states=encoder_states)
    assert [len(layer) for layer in model.init_cache(2, MAX_LENGTH, encoder_states).layers] == [4, 4]
    with pytest.raises(ValueError, match="no cross-attention layers"):
        roberta_model("Roberta").init_cache(2, MAX_LENGTH, encoder_states)


def test_roberta_encoder_refuses_a_static_cache():
    model = roberta_model("Roberta", is_decoder=False)
    with pytest.raises(ValueError, match="a StaticCache needs a decoder: set is_decoder=True"):
        model.init_cache(2, MAX_LENGTH)
    cache = roberta_model("Roberta").init_cache(2, MAX_LENGTH)
    with pytest.raises(ValueError, match="a StaticCache needs a decoder"):
        model(input_ids=decoder_batch()[0], past_key_values=cache)
