"""Tests for corpora/generate.py and the corpus files generated from it."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from nextword.targets import read_targets

CORPORA = Path(__file__).resolve().parent.parent / "corpora"
GENERATOR = CORPORA / "generate.py"


def _load_generator():
    # corpora/ is a folder of data plus one script, not a package, so load it by path.
    spec = importlib.util.spec_from_file_location("corpora_generate", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


gen = _load_generator()

# The settings the committed files were generated with (see corpora/README.md).
STORIES_SIZE = 1_000_000
LONGRANGE_SIZE = 4_000_000
LONGRANGE_DISTANCES = (2, 30)


def _word_at(text: str, target) -> str:
    return text.split("\n")[target.line].split()[target.word]


def test_stories_are_deterministic_per_seed():
    first = gen.generate_stories(1, 20_000)
    assert first == gen.generate_stories(1, 20_000)
    assert first != gen.generate_stories(2, 20_000)


@pytest.mark.parametrize("size", [1, 5_000, 60_000])
def test_stories_stop_at_the_first_line_end_past_size(size):
    text = gen.generate_stories(3, size)
    assert text.endswith("\n") and not text.endswith("\n\n")
    assert size <= len(text.encode()) < size + max(len(line) + 2 for line in text.split("\n"))


def test_stories_are_clean_paragraphs():
    text = gen.generate_stories(4, 100_000)
    assert text.isascii()
    assert "{" not in text and "}" not in text and "  " not in text
    names = {character.name for character in gen.CAST}
    paragraphs = [line for line in text.splitlines() if line]
    for paragraph in paragraphs:
        assert paragraph[0].isupper()
        assert paragraph[-1] in '.!?"' or paragraph.split()[-1] in names  # letters are signed
    assert max(len(p) for p in paragraphs) < 1_500


def test_longrange_is_deterministic_per_seed():
    first = gen.generate_longrange(1, 20_000, 2, 30)
    assert first == gen.generate_longrange(1, 20_000, 2, 30)
    assert first[0] != gen.generate_longrange(2, 20_000, 2, 30)[0]


@pytest.mark.parametrize("low, high", [(1, 1), (2, 30), (5, 5), (40, 60)])
def test_targets_point_at_their_words_at_the_right_distance(low, high):
    text, targets = gen.generate_longrange(5, 40_000, low, high)
    assert len(text.encode()) >= 40_000
    assert len(targets) > 100
    lines = text.split("\n")
    for target in targets:
        words = lines[target.line].split()
        assert words[target.word] == target.expected
        assert low <= target.distance <= high
        cue = words[target.word - target.distance - 1]
        if target.kind.startswith("be-"):
            assert target.expected in {"be-past": ("was", "were"), "be-present": ("is", "are")}[target.kind]
            assert words[target.word - target.distance - 2] == "The"  # "The dogs ... are"
        else:  # a name or a number, repeated from the cue
            assert cue.strip(".,") == target.expected.strip(".,")
            names = {character.name for character in gen.CAST}
            assert (target.expected.strip(".,") in names) == (target.kind == "name")
            assert (target.expected in gen.NUMBERS) == (target.kind == "number")
    assert {t.distance for t in targets} == set(range(low, high + 1))


def test_longrange_rejects_impossible_distances():
    with pytest.raises(ValueError):
        gen.generate_longrange(0, 1_000, 0, 5)
    with pytest.raises(ValueError):
        gen.generate_longrange(0, 1_000, 10, 5)


def test_targets_round_trip_through_the_sidecar(tmp_path):
    _, targets = gen.generate_longrange(6, 5_000, 2, 10)
    path = gen.targets_path(tmp_path / "corpus.txt")
    assert path.name == "corpus.txt.targets.jsonl"
    gen.write_targets(path, targets)
    assert read_targets(path) == targets


def test_command_line_writes_text_and_sidecar(tmp_path):
    out = tmp_path / "lr.txt"
    subprocess.run(
        [
            sys.executable,
            str(GENERATOR),
            "longrange",
            "--seed",
            "7",
            "--size",
            "3000",
            "--min-distance",
            "3",
            "--max-distance",
            "9",
            "--out",
            str(out),
        ],
        check=True,
    )
    text, targets = gen.generate_longrange(7, 3000, 3, 9)
    assert out.read_text() == text
    assert read_targets(gen.targets_path(out)) == targets


def test_committed_stories_match_the_generator():
    committed = (CORPORA / "stories.txt").read_text(encoding="ascii")
    assert committed == gen.generate_stories(0, STORIES_SIZE), (
        "corpora/stories.txt is out of date: regenerate it with the command in corpora/README.md"
    )


def test_committed_longrange_matches_the_generator():
    text, targets = gen.generate_longrange(0, LONGRANGE_SIZE, *LONGRANGE_DISTANCES)
    path = CORPORA / "longrange.txt"
    assert path.read_text(encoding="ascii") == text, (
        "corpora/longrange.txt is out of date: regenerate it with the command in corpora/README.md"
    )
    assert read_targets(gen.targets_path(path)) == targets


def test_template_files_read_sections_keys_and_continued_lines(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text(
        "# a comment\n[kind: tale]\nopening: Once, {hero} {v:say}: hi.\nopening: Then\n"
        "   it ended.\n\n[words]\nbig: a, b,\n     c d\nall: @big, e\n"
    )
    sections = gen.read_templates(path)
    assert sections["kind: tale"] == {"opening": ("Once, {hero} {v:say}: hi.", "Then it ended.")}
    assert gen.records(sections, "kind") == {"tale": sections["kind: tale"]}
    assert gen.word_lists(sections["words"]) == {"big": ("a", "b", "c d"), "all": ("a", "b", "c d", "e")}


def test_template_files_refuse_a_line_without_a_key(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("[kind: tale]\n{hero} {v:open} the door.\n")
    with pytest.raises(ValueError, match="line 2"):
        gen.read_templates(path)


def test_every_template_slot_names_a_word_list():
    templates = [*gen.EVERYDAY, *gen.CUE_ACTIONS]
    for kind in gen.PARAGRAPH_KINDS:
        assert kind.openings and kind.closings and len(kind.body) >= 4  # a paragraph uses up to four
        templates += [*kind.openings, *kind.body, *kind.closings]
    for season in gen.SEASONS:
        templates += season["season_detail"]
    topics = {key for topic in [*gen.SEASONS, *gen.ANIMAL_GROUPS] for key in topic}
    words = {*gen.VOCAB, *topics, "hero", "friend", "he", "him", "his"}
    for template in templates:
        for op, name, _ in gen._SLOT.findall(template):
            # {v:...} inflects any verb as written, so only the word slots can be checked.
            assert op in ("v", "vp") or (op in ("", "pl") and name in words), template
