"""Seeded generators for the corpora bundled with nextword (corpora/README.md has the commands).

* ``stories``: short English stories (one paragraph per line, a blank line between stories)
  about a recurring cast, for demos and quick experiments.
* ``longrange``: sentences whose correct next word depends on a word far back (a name to repeat,
  a number to recall, a subject to agree with), plus a sidecar file that lists every such target
  word, for measuring how far back a model remembers.

The word lists and sentence templates are data, in corpora/templates/; this script holds the
English grammar and the rules that put them together. All randomness comes from one
``random.Random(seed)`` per call, and nothing iterates over sets, so the output depends on the
seed alone.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from collections import ChainMap
from pathlib import Path
from typing import Callable, NamedTuple

# nextword's one definition of the targets and their sidecar naming (nextword/targets.py, no torch
# in it), and the template reader beside this script: found from this checkout, installed or not.
_HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(_HERE), str(_HERE.parent)]
from nextword.targets import Target, targets_path, write_targets  # noqa: E402
from template_files import Section, mapping, read_templates, records, word_list, word_lists  # noqa: E402

# --------------------------------------------------------------------------------------
# Vocabulary (templates/words.txt). Single words unless noted, so word counts stay exact.
# --------------------------------------------------------------------------------------

_WORDS = read_templates("words.txt")


class Character(NamedTuple):
    name: str
    gender: str  # "female" or "male", selects the pronouns


CAST = tuple(Character(name, gender) for gender, names in word_lists(_WORDS["cast"]).items() for name in names)
PRONOUNS = {"female": {"he": "she", "him": "her", "his": "her"}, "male": {"he": "he", "him": "him", "his": "his"}}
# What each job does, as a verb phrase in the base form ("Every day, she bakes bread ...").
JOB_DUTIES = mapping(_WORDS["jobs"])
# Verb groups a template can draw from, e.g. {v:handle} -> "polished" / "polishes".
VERB_GROUPS = word_lists(_WORDS["verbs"])
# The slot names a template may use, e.g. {animal} or {pl:flower}.
VOCAB = {**word_lists(_WORDS["words"]), "job": tuple(JOB_DUTIES)}
NUMBERS = VOCAB["number"]

# --------------------------------------------------------------------------------------
# English morphology: just enough rules for the words above (exceptions: templates/english.txt).
# --------------------------------------------------------------------------------------

_ENGLISH = read_templates("english.txt")
IRREGULAR_PAST = mapping(_ENGLISH["past tense"])
IRREGULAR_PLURAL = mapping(_ENGLISH["plural"])
# Verbs that double their last consonant before -ed (stop -> stopped).
DOUBLING_VERBS = word_lists(_ENGLISH["spelling"])["doubling verbs"]
VOWELS = "aeiou"


def plural(noun: str) -> str:
    if noun in IRREGULAR_PLURAL:
        return IRREGULAR_PLURAL[noun]
    if noun.endswith(("s", "sh", "ch", "x", "z")):
        return noun + "es"
    if noun.endswith("y") and noun[-2] not in VOWELS:
        return noun[:-1] + "ies"
    return noun + "s"


def third_person(verb: str) -> str:
    special = {"be": "is", "have": "has", "do": "does", "go": "goes"}
    if verb in special:
        return special[verb]
    return plural(verb)  # the spelling rules for -s are the same as for nouns


def past_tense(verb: str) -> str:
    if verb in IRREGULAR_PAST:
        return IRREGULAR_PAST[verb]
    if verb.endswith("e"):
        return verb + "d"
    if verb.endswith("y") and verb[-2] not in VOWELS:
        return verb[:-1] + "ied"
    if verb in DOUBLING_VERBS:
        return verb + verb[-1] + "ed"
    return verb + "ed"


def conjugate(phrase: str, tense: str, plural_subject: bool) -> str:
    """Inflect the first word of a verb phrase ("pick up") for a third-person subject."""
    verb, _, rest = phrase.partition(" ")
    if verb == "be":
        forms = {("past", False): "was", ("past", True): "were", ("present", False): "is", ("present", True): "are"}
        verb = forms[tense, plural_subject]
    elif tense == "past":
        verb = past_tense(verb)
    elif not plural_subject:
        verb = third_person(verb)
    return f"{verb} {rest}" if rest else verb


def _article_for(word: str) -> str:
    """'a' or 'an', by the sound the word starts with rather than its letter."""
    lower = word.lower()
    if lower.startswith(("uni", "use", "usu", "eu", "one")):
        return "a"
    if lower.startswith(("hour", "honest", "honor", "heir")):
        return "an"
    return "an" if lower[0] in VOWELS else "a"


_ARTICLE = re.compile(r"\b([Aa]) ([A-Za-z]+)")
# A sentence starts at the beginning of a template or after . ! ? and a space, possibly
# followed by an opening quote. '"Hi!" said Tom' does not match, so "said" stays lowercase.
_SENTENCE_START = re.compile(r'(^"?|[.!?] "?)([a-z])')


def fix_articles(text: str) -> str:
    def choose(match: re.Match) -> str:
        article = _article_for(match[2])
        return f"{article.capitalize() if match[1] == 'A' else article} {match[2]}"

    return _ARTICLE.sub(choose, text)


def capitalize_sentences(text: str) -> str:
    return _SENTENCE_START.sub(lambda m: m[1] + m[2].upper(), text)


# --------------------------------------------------------------------------------------
# Templates
# --------------------------------------------------------------------------------------

# {name} picks a word from VOCAB[name]; {pl:name} its plural; {v:verb} / {vp:verb} inflect
# a verb (or a VERB_GROUPS member) for a singular / plural subject in the scene's tense.
# {name=tag} remembers its pick under tag, so later slots with the same tag repeat it.
# {hero}, {friend}, {he}, {him} and {his} refer to the scene's two characters.
_SLOT = re.compile(r"\{(?:(\w+):)?(\w+)(?:=(\w+))?\}")


class Scene:
    """Fills template slots consistently for one paragraph (or one longrange phrase)."""

    def __init__(
        self,
        rng: random.Random,
        tense: str,
        hero: Character,
        friend: Character,
        bound: dict[str, str] | None = None,
        topic: dict | None = None,
    ):
        self.rng = rng
        self.tense = tense
        self.bound = {} if bound is None else bound
        # A topic narrows categories for one paragraph, e.g. "month" to the winter months.
        self.vocab = ChainMap(topic or {}, VOCAB)
        self.people = {"hero": hero.name, "friend": friend.name, **PRONOUNS[hero.gender]}

    def render(self, template: str) -> str:
        return fix_articles(_SLOT.sub(self._fill, template))

    def _fill(self, slot: re.Match) -> str:
        op, name, tag = slot.groups()
        if op in ("v", "vp"):
            return conjugate(self._verb_phrase(name), self.tense, plural_subject=op == "vp")
        word = self._word(name, tag)
        return plural(word) if op == "pl" else word

    def _verb_phrase(self, name: str) -> str:
        if name == "duty":
            return JOB_DUTIES[self._word("job", "job")]
        if name in VERB_GROUPS:
            return self.rng.choice(VERB_GROUPS[name])
        return name

    def _word(self, name: str, tag: str | None) -> str:
        if name in self.people:
            return self.people[name]
        if tag is None:
            return self.rng.choice(self.vocab[name])
        if tag not in self.bound:
            # A new tag takes a word not already in use, so a trip never goes from a town
            # to the same town and a visiting fox is never the hero's own pet.
            used = set(self.bound.values())
            fresh = [w for w in self.vocab[name] if w not in used] or self.vocab[name]
            self.bound[tag] = self.rng.choice(fresh)
        return self.bound[tag]


def _render_sentence(scene: Scene, template: str) -> str:
    return capitalize_sentences(scene.render(template))


# --------------------------------------------------------------------------------------
# Stories (templates/stories.txt)
# --------------------------------------------------------------------------------------

_STORIES = read_templates("stories.txt")
# In a season or an animal group, these keys hold phrases, one a line; the others are word lists.
_PHRASE_KEYS = ("season_detail", "pastime", "habitat", "diet")


def _topic(section: Section) -> Section:
    """A season or an animal group: each key is a slot whose words stand in for VOCAB's."""
    return {key: values if key in _PHRASE_KEYS else word_list(values, VOCAB) for key, values in section.items()}


SEASONS = tuple({"season": (name,), **_topic(section)} for name, section in records(_STORIES, "season").items())
ANIMAL_GROUPS = tuple(_topic(section) for section in records(_STORIES, "animal group").values())


def _season_topic(rng: random.Random) -> Section:
    return rng.choice(SEASONS)


def _animal_topic(rng: random.Random) -> Section:
    group = rng.choice(ANIMAL_GROUPS)
    return {**group, "animal": (rng.choice(group["animal"]),)}  # one animal for the paragraph


class ParagraphKind(NamedTuple):
    tense: str
    openings: tuple[str, ...]
    body: tuple[str, ...]  # in story order; a paragraph uses a few of them, order kept
    closings: tuple[str, ...]
    uses_everyday: bool  # may mix in EVERYDAY sentences
    topic: Callable[[random.Random], Section] | None  # narrows word lists for one paragraph


TOPICS = {"season": _season_topic, "animal group": _animal_topic}


def _paragraph_kind(name: str, section: Section) -> ParagraphKind:
    (tense,), (everyday,) = section["tense"], section["everyday"]
    if tense not in ("past", "present") or everyday not in ("yes", "no"):
        raise ValueError(f"kind {name}: tense is past or present, everyday is yes or no")
    topic = TOPICS[section["topic"][0]] if "topic" in section else None
    return ParagraphKind(tense, section["opening"], section["body"], section["closing"], everyday == "yes", topic)


# Tense-neutral sentences about the hero's day, mixed into many kinds of paragraph.
EVERYDAY = _STORIES["everyday"]["sentence"]
PARAGRAPH_KINDS = tuple(_paragraph_kind(name, section) for name, section in records(_STORIES, "kind").items())
# Tags that stay bound across the paragraphs of one story, so the hero keeps a home town,
# a pet, a job and a favorite relative.
STORY_TAGS = ("town", "pet", "job", "rel")


def _paragraph(
    rng: random.Random, kind: ParagraphKind, hero: Character, friend: Character, bound: dict[str, str]
) -> str:
    scene = Scene(rng, kind.tense, hero, friend, bound, kind.topic(rng) if kind.topic else None)
    chosen = sorted(rng.sample(range(len(kind.body)), rng.randint(2, 4)))
    templates = [rng.choice(kind.openings), *(kind.body[i] for i in chosen)]
    if kind.uses_everyday:
        for _ in range(rng.randint(0, 2)):
            templates.insert(rng.randint(1, len(templates)), rng.choice(EVERYDAY))
    templates.append(rng.choice(kind.closings))
    return " ".join(_render_sentence(scene, t) for t in templates)


def _story(rng: random.Random) -> list[str]:
    hero, friend = rng.sample(CAST, 2)
    remembered: dict[str, str] = {}
    paragraphs = []
    for _ in range(rng.randint(1, 3)):
        bound = dict(remembered)
        paragraphs.append(_paragraph(rng, rng.choice(PARAGRAPH_KINDS), hero, friend, bound))
        remembered.update((tag, bound[tag]) for tag in STORY_TAGS if tag in bound)
    return paragraphs


def generate_stories(seed: int, size: int) -> str:
    """Stories, one paragraph per line and a blank line between stories.

    Stops at the end of the first line that brings the text to ``size`` bytes or more.
    """
    rng = random.Random(seed)
    lines: list[str] = []
    length = 0  # bytes so far, counting one newline per line (the text is ASCII)
    while length < size:
        if lines:
            lines.append("")
            length += 1
        for paragraph in _story(rng):
            lines.append(paragraph)
            length += len(paragraph) + 1
            if length >= size:
                break
    return "".join(line + "\n" for line in lines)


# --------------------------------------------------------------------------------------
# Long-range dependencies (templates/longrange.txt)
# --------------------------------------------------------------------------------------

_LONGRANGE = read_templates("longrange.txt")
# Past-tense actions for the cue's sentence; rendered with the cue as hero.
CUE_ACTIONS = _LONGRANGE["cue"]["action"]
NAME_ENDINGS = _LONGRANGE["name"]["ending"]
COUNTING = word_lists(_LONGRANGE["count"])
# Exact-length building blocks for the words between a cue and its target.
GAP = word_lists(_LONGRANGE["gap"])
TIME_PHRASES = {
    length: tuple(p for p in GAP["time"] if len(p.split()) == length)
    for length in sorted({len(p.split()) for p in GAP["time"]})
}
AGREEMENT = word_lists(_LONGRANGE["agreement"])
AGREEMENT_TOPICS = tuple(map(word_lists, records(_LONGRANGE, "agreement topic").values()))


def _landmark(rng: random.Random, size: int, used: set[str]) -> list[str]:
    """A landmark of 2 to 6 words, from 'the mill' to 'the old mill near the river'.

    Nouns already in used are avoided, so a list names each place once while it can.
    """
    if size >= 5:
        head = _landmark(rng, size - 3, used)
        return [*head, rng.choice(GAP["landmark relation"]), *_landmark(rng, 2, used)]
    noun = rng.choice([n for n in VOCAB["place"] if n not in used] or VOCAB["place"])
    used.add(noun)
    if rng.random() < 0.3:  # mixed number, so the nearest noun says nothing about agreement
        noun = plural(noun)
    adjectives = [rng.choice(GAP["landmark mood"]), rng.choice(GAP["landmark size"])][4 - size :]
    return ["the", *adjectives, noun]


def _errand(rng: random.Random, size: int, used: set[str]) -> list[str]:
    """An errand of 3 to 8 words: 'passing the mill', 'stopping at the old bakery'.

    Like landmarks, errands already in used are avoided while others fit.
    """
    fitting = [e for e in GAP["errand"] if 2 <= size - len(e.split()) <= 6]
    errand = rng.choice([e for e in fitting if e not in used] or fitting)
    used.add(errand)
    return errand.split() + _landmark(rng, size - len(errand.split()), used)


Phrase = Callable[[random.Random, int, set[str]], list[str]]


def _series(rng: random.Random, length: int, phrase: Phrase, shortest: int, longest: int, used: set[str]) -> list[str]:
    """Exactly length words: one phrase, or several joined as 'A, B and C'.

    Each phrase has shortest to longest words, and longest >= 2 * shortest, so every
    length from shortest up can be reached.
    """
    if length <= longest and (length <= 2 * shortest or rng.random() < 0.4):
        return phrase(rng, length, used)
    sizes: list[int] = []
    remaining = length - 1  # one word goes to the final "and"
    while remaining:
        fits = [s for s in range(shortest, longest + 1) if (s == remaining and sizes) or remaining - s >= shortest]
        sizes.append(rng.choice(fits))
        remaining -= sizes[-1]
    words: list[str] = []
    for i, size in enumerate(sizes):
        if i == len(sizes) - 1:
            words.append("and")
        elif i > 0:
            words[-1] += ","
        words += phrase(rng, size, used)
    return words


def _adverbial(rng: random.Random, length: int) -> list[str]:
    """An adverbial of exactly length words: 'later', 'on the way to the old mill', ..."""
    if length == 0:
        return []
    if length in TIME_PHRASES and (length < 3 or rng.random() < 0.25):
        return rng.choice(TIME_PHRASES[length]).split()
    if length >= 4 and rng.random() < 0.5:
        return [rng.choice(GAP["errand start"]), *_series(rng, length - 1, _errand, 3, 8, set())]
    prefix = rng.choice([p for p in GAP["route"] if len(p.split()) <= length - 2]).split()
    return prefix + _series(rng, length - len(prefix), _landmark, 2, 6, set())


def _cue_actions(rng: random.Random, hero: Character, max_words: int) -> list[list[str]]:
    """One rendering of each CUE_ACTIONS template, keeping those of at most max_words."""
    scene = Scene(rng, "past", hero, rng.choice([c for c in CAST if c != hero]))
    rendered = (scene.render(t).split() for t in CUE_ACTIONS)
    return [action for action in rendered if len(action) <= max_words]


# A frame builds one sentence for an exact distance: (words, cue index, target index, kind).
FrameWords = tuple[list[str], int, int, str]


def _agreement_frame(rng: random.Random, distance: int) -> FrameWords:
    """'The dogs that the farmer fed near the old mill are hungry.': subject-verb agreement."""
    topic = rng.choice(AGREEMENT_TOPICS)
    is_plural = rng.random() < 0.5
    noun = rng.choice(topic["noun"])
    words = ["The", plural(noun) if is_plural else noun]
    if distance == 1:
        words.append(rng.choice(AGREEMENT["nearby"]))
    elif distance == 2:
        words += [rng.choice(("in", "from", "near")), rng.choice(VOCAB["town"])]
    elif distance >= 4 and rng.random() < 0.5:
        agent = rng.choice(AGREEMENT["agent"])
        agent = plural(agent) if rng.random() < 0.5 else agent
        words += ["that", "the", agent, rng.choice(topic["verb"]), *_adverbial(rng, distance - 4)]
    else:
        words += [rng.choice(AGREEMENT["preposition"]), *_series(rng, distance - 1, _landmark, 2, 6, set())]
    past = rng.random() < 0.5
    verb = conjugate("be", "past" if past else "present", is_plural)
    target = len(words)
    words += [verb, rng.choice(topic["adjective"]) + "."]
    return words, 1, target, "be-past" if past else "be-present"


def _name_frame(rng: random.Random, distance: int) -> FrameWords:
    """'Mira picked up the lamp, and after walking past the mill, Mira went home.'"""
    hero = rng.choice(CAST)
    action = rng.choice(_cue_actions(rng, hero, distance - 1))
    adverbial = _adverbial(rng, distance - 1 - len(action))
    words = [hero.name, *action]
    words[-1] += ","
    words += ["and", *adverbial]
    if len(adverbial) >= 3:
        words[-1] += ","
    target = len(words)
    words += [hero.name, *rng.choice(NAME_ENDINGS).split()]
    return words, 0, target, "name"


def _who_frame(rng: random.Random, distance: int) -> FrameWords:
    """'Mira fed the goats after visiting the barn. Who fed the goats? It was Mira.'"""
    hero = rng.choice(CAST)
    action = rng.choice(_cue_actions(rng, hero, (distance - 3) // 2))
    words = [hero.name, *action, *_adverbial(rng, distance - 3 - 2 * len(action))]
    words[-1] += "."
    words += ["Who", *action]
    words[-1] += "?"
    words += ["It", "was"]
    target = len(words)
    words.append(hero.name + ".")
    return words, 0, target, "name"


def _count_frame(rng: random.Random, distance: int) -> FrameWords:
    """'Mira packed seven apples, and on the way to the market, she still had seven apples.'"""
    hero = rng.choice(CAST)
    count, things = rng.choice(NUMBERS), rng.choice(COUNTING["thing"])
    adverbial = _adverbial(rng, distance - 5)
    words = [hero.name, rng.choice(COUNTING["verb"]), count, things + ",", "and", *adverbial]
    if len(adverbial) >= 3:
        words[-1] += ","
    words += [PRONOUNS[hero.gender]["he"], "still", "had"]
    target = len(words)
    words += [count, things + "."]
    return words, 2, target, "number"


class Frame(NamedTuple):
    min_distance: int
    build: Callable[[random.Random, int], FrameWords]


FRAMES = (Frame(1, _agreement_frame), Frame(2, _name_frame), Frame(5, _who_frame), Frame(5, _count_frame))
FILLER_TEMPLATES = EVERYDAY + records(_STORIES, "kind")["conversation"]["body"]
FRAMES_PER_LINE = (1, 3)  # dense targets: the validation split of a small file holds hundreds
FILLER_SHARE = 0.1  # chance of an everyday sentence between frames, so lines are not all frames


def _filler_sentence(rng: random.Random) -> str:
    hero, friend = rng.sample(CAST, 2)
    return _render_sentence(Scene(rng, "past", hero, friend), rng.choice(FILLER_TEMPLATES))


def _longrange_line(
    rng: random.Random, min_distance: int, max_distance: int
) -> tuple[str, list[tuple[int, str, int, str]]]:
    """One line of a few frames, and its targets as (word index, expected word, distance, kind)."""
    words: list[str] = []
    targets: list[tuple[int, str, int, str]] = []
    for _ in range(rng.randint(*FRAMES_PER_LINE)):
        if rng.random() < FILLER_SHARE:
            words += _filler_sentence(rng).split()
        distance = rng.randint(min_distance, max_distance)
        frame = rng.choice([f for f in FRAMES if f.min_distance <= distance])
        frame_words, cue, target, kind = frame.build(rng, distance)
        assert target - cue - 1 == distance, frame  # every frame must hit the distance exactly
        targets.append((len(words) + target, frame_words[target], distance, kind))
        words += frame_words
    return " ".join(words), targets


def generate_longrange(seed: int, size: int, min_distance: int, max_distance: int) -> tuple[str, list[Target]]:
    """Sentences with long-range dependencies, and the target words to score a model on.

    Each target's distance is drawn uniformly from [min_distance, max_distance]. Stops at
    the end of the first line that brings the text to ``size`` bytes or more.
    """
    if not 1 <= min_distance <= max_distance:
        raise ValueError(f"need 1 <= min_distance <= max_distance, got {min_distance}, {max_distance}")
    rng = random.Random(seed)
    lines: list[str] = []
    targets: list[Target] = []
    length = 0
    while length < size:
        line, line_targets = _longrange_line(rng, min_distance, max_distance)
        targets += [Target(len(lines), *target) for target in line_targets]
        lines.append(line)
        length += len(line) + 1
    return "".join(line + "\n" for line in lines), targets


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="ascii", newline="\n") as f:
        f.write(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Generate the corpora bundled with nextword.")
    corpora = parser.add_subparsers(dest="corpus", required=True)
    stories = corpora.add_parser("stories", help="short stories for demos and training")
    longrange = corpora.add_parser("longrange", help="long-range dependency test sentences")
    for sub, default_size in ((stories, 1_000_000), (longrange, 4_000_000)):
        sub.add_argument("--seed", type=int, default=0)
        sub.add_argument(
            "--size", type=int, default=default_size, help="approximate size in bytes (default: %(default)s)"
        )
        sub.add_argument("--out", type=Path, required=True, help="text file to write")
    longrange.add_argument(
        "--min-distance", type=int, default=2, help="fewest words between cue and target (default: %(default)s)"
    )
    longrange.add_argument(
        "--max-distance", type=int, default=30, help="most words between cue and target (default: %(default)s)"
    )
    args = parser.parse_args(argv)

    if args.corpus == "stories":
        _write_text(args.out, generate_stories(args.seed, args.size))
        return
    try:
        text, targets = generate_longrange(args.seed, args.size, args.min_distance, args.max_distance)
    except ValueError as error:
        parser.error(str(error))
    _write_text(args.out, text)
    write_targets(targets_path(args.out), targets)


if __name__ == "__main__":
    main()
