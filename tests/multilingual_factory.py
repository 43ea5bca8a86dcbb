"""Randomly initialised multilingual text towers of the real architecture, saved as sentence-transformers
folders: multilingual DistilBERT (cased WordPiece), mean pooling, Dense without bias to the CLIP width."""
import shutil
from pathlib import Path

import torch

# DistilBertConfig arguments and the Dense output width
PRESETS = {
    'tiny': dict(dim=48, n_layers=2, n_heads=2, hidden_dim=96, max_position_embeddings=128, out=32),
    # distilbert-base-multilingual-cased, as clip-ViT-B-32-multilingual-v1 uses it: the real cost
    'full': dict(dim=768, n_layers=6, n_heads=12, hidden_dim=3072, max_position_embeddings=512, out=512,
                 vocab_size=119547),
}
SPECIALS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']
WORDS = ('a an the dog dogs cat man woman rides bike along beach on in at of and with night city fireworks over '
         'red car snow people talking kitchen two running playing ball . , ! ? - \' "').split()
# single characters: BERT's tokenizer splits every CJK character on its own
CHARACTERS = list('狗猫海滩东京犬自行车骑在上的人烟花夜城市红雪里两个说话厨房跑玩球男女沙一只') + list('のがでをにはとも')
ARABIC = 'كلب قطة على الشاطئ رجل يركب دراجة في الليل ألعاب نارية'.split()
SUBWORDS = ['##s', '##ing', '##ed', '##er', '##ly']


def vocabulary(size: int = 0) -> list[str]:
    """A cased WordPiece vocabulary: the specials, some English, CJK characters, kana and Arabic words
    (no emoji: they read as [UNK]), padded with filler pieces to `size` entries when given."""
    words = SPECIALS + WORDS + CHARACTERS + ARABIC + SUBWORDS
    return words + [f'##x{i}' for i in range(max(0, size - len(words)))]


def write_random_multilingual_model(folder: Path, preset: str = 'tiny', out: int | None = None, seed: int = 0) -> Path:
    """Save a randomly initialised multilingual tower as a sentence-transformers folder (what the loader reads)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Dense, Pooling, Transformer
    from transformers import BertTokenizerFast, DistilBertConfig, DistilBertModel

    settings = dict(PRESETS[preset])
    out = out or settings.pop('out')
    settings.pop('out', None)
    words = vocabulary(settings.pop('vocab_size', 0))
    torch.manual_seed(seed)
    base = folder.parent / f'.{folder.name}.transformer'
    DistilBertModel(DistilBertConfig(vocab_size=len(words), **settings)).save_pretrained(base)
    BertTokenizerFast(vocab={word: i for i, word in enumerate(words)}, do_lower_case=False,
                      tokenize_chinese_chars=True, strip_accents=False).save_pretrained(base)
    transformer = Transformer(str(base), max_seq_length=128)
    dim = settings['dim']
    model = SentenceTransformer(modules=[transformer, Pooling(dim, 'mean'),
                                         Dense(dim, out, bias=False, activation_function=torch.nn.Identity())],
                                device='cpu')
    model.save(str(folder))
    shutil.rmtree(base)
    return folder
