"""Rebuild wordnet_glosses.tsv.gz from Debian's `wordnet-base` package (WordNet 3.0; license in SOURCE.md).

    apt-get download wordnet-base && dpkg-deb -x wordnet-base_*.deb wordnet-base
    python examples/data/build_wordnet_glosses.py wordnet-base/usr/share/wordnet

Every fourth synset of each part of speech is kept (about 29,000), to keep the repository small. Each row is
`lexname <TAB> words <TAB> definition <TAB> examples`: the lexicographer class (e.g. noun.animal), the synset's
words joined by ", ", the gloss's definition, and its quoted usage examples joined by " | " (possibly empty).
"""

import gzip
import os
import sys

# WordNet's lexicographer file numbers (lexnames(5)).
LEXNAMES = [
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact", "noun.attribute",
    "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling", "noun.food", "noun.group",
    "noun.location", "noun.motive", "noun.object", "noun.person", "noun.phenomenon", "noun.plant",
    "noun.possession", "noun.process", "noun.quantity", "noun.relation", "noun.shape", "noun.state",
    "noun.substance", "noun.time", "verb.body", "verb.change", "verb.cognition", "verb.communication",
    "verb.competition", "verb.consumption", "verb.contact", "verb.creation", "verb.emotion", "verb.motion",
    "verb.perception", "verb.possession", "verb.social", "verb.stative", "verb.weather", "adj.ppl",
]
KEEP_EVERY = 4


def synsets(path: str):
    """(lexname, words, definition, examples) of each synset line of one data.* file."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("  "):  # the license header
                continue
            fields, _, gloss = line.partition(" | ")
            parts = fields.split()
            word_count = int(parts[3], 16)
            words = [parts[4 + 2 * i].replace("_", " ") for i in range(word_count)]
            words = [w.split("(")[0] for w in words]  # adjective markers such as "(a)"
            pieces = [p.strip() for p in gloss.strip().split(";")]
            definition = pieces[0]
            examples = [p.strip('"') for p in pieces[1:] if p.startswith('"')]
            yield LEXNAMES[int(parts[1])], ", ".join(words), definition, " | ".join(examples)


def main(wordnet_folder: str) -> None:
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wordnet_glosses.tsv.gz")
    rows = []
    for pos in ("noun", "verb", "adj", "adv"):
        rows += [row for i, row in enumerate(synsets(os.path.join(wordnet_folder, f"data.{pos}"))) if i % KEEP_EVERY == 0]
    with gzip.GzipFile(out, "wb", mtime=0) as raw:
        raw.write("".join("\t".join(row) + "\n" for row in rows).encode("utf-8"))
    print(f"wrote {len(rows)} synsets to {out}")


if __name__ == "__main__":
    main(sys.argv[1])
