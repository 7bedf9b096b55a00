"""The toy model's tokenizer: byte-level BPE trained on the toy corpus, with a chat template.

Turns look like ``<|user|>Tell me a bio of X.<|end|><|assistant|>X was born in ...<|end|>``; ``<|end|>``
is the end-of-turn (EOS) token, ``<|pad|>`` pads. Training is deterministic for the same texts and vocab
size. Offsets map to characters (no offset trimming), as the Mask-DPO token masks need.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from maskdpo.toyworld.corpus import ChatExample

PAD, USER, ASSISTANT, END = "<|pad|>", "<|user|>", "<|assistant|>", "<|end|>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, USER, ASSISTANT, END)

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}"
    + USER
    + "{{ message['content'] }}"
    + END
    + "{% elif message['role'] == 'assistant' %}"
    + ASSISTANT
    + "{{ message['content'] }}"
    + END
    + "{% else %}{{ raise_exception('only user and assistant turns are supported, got ' + message['role']) }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}" + ASSISTANT + "{% endif %}"
)


def train_tokenizer(texts: Iterable[str], vocab_size: int = 1536) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer over ``texts``; the special tokens take the first ids."""
    if vocab_size < 300:
        raise ValueError(f"vocab_size must be >= 300 (256 bytes + specials + merges), got {vocab_size}")
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=core, pad_token=PAD, eos_token=END, additional_special_tokens=[USER, ASSISTANT]
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.padding_side = "left"
    return tokenizer


def corpus_texts(examples: Sequence[ChatExample]) -> Iterable[str]:
    """The user and assistant texts of chat examples (what the tokenizer is trained on)."""
    for example in examples:
        for message in example["messages"]:
            yield message["content"]
