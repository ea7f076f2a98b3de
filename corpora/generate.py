"""Seeded generators for the corpora bundled with nextword.

Two corpora, both written from hand-made word lists and sentence templates, so that the
project ships training text it fully owns and can rebuild byte for byte:

* ``stories``: short English stories (one paragraph per line, a blank line between
  stories) about a recurring cast, for demos and quick experiments.
* ``longrange``: sentences whose correct next word depends on a word far back (a name to
  repeat, a number to recall, a subject to agree with), plus a sidecar file that lists
  every such target word, for measuring how far back a model remembers.

Usage::

    python corpora/generate.py stories --seed 0 --size 1000000 --out corpora/stories.txt
    python corpora/generate.py longrange --seed 0 --size 4000000 --min-distance 2 \\
        --max-distance 30 --out corpora/longrange.txt

All randomness comes from one ``random.Random(seed)`` per call, and nothing iterates over
sets, so the output depends on the seed alone.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from collections import ChainMap
from pathlib import Path
from typing import Callable, NamedTuple

# The targets' one definition and sidecar naming are nextword's (nextword/targets.py, no torch in it):
# found from the checkout this script is in, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from nextword.targets import Target, targets_path, write_targets  # noqa: E402

# --------------------------------------------------------------------------------------
# Vocabulary. Every category is single words unless noted, so word counts stay exact.
# --------------------------------------------------------------------------------------


def _words(text: str) -> tuple[str, ...]:
    """A word list written as one whitespace-separated string, which keeps long lists compact."""
    return tuple(text.split())


class Character(NamedTuple):
    name: str
    gender: str  # "f" or "m", selects the pronouns


FEMALE_NAMES = _words("""Mira Anna Clara Lena Rosa Nora Ella Maya Ruth Iris Hannah Julia Eva Lucy
                         Grace Alice Sofia Tessa Vera Zoe Hazel Ada Ivy Nina Greta""")
MALE_NAMES = _words("""Tom Leo Sam Ben Max Oscar Felix Hugo Jonas Peter Arthur Jack Owen Theo
                       Milo Victor Daniel Simon Karl Ivan Noah Eli Paul Omar Rafael""")
CAST = tuple(Character(n, "f") for n in FEMALE_NAMES) + tuple(Character(n, "m") for n in MALE_NAMES)
PRONOUNS = {"f": {"he": "she", "him": "her", "his": "her"},
            "m": {"he": "he", "him": "him", "his": "his"}}

TOWNS = _words("""Millbrook Ashford Brightwater Oakridge Fernhill Stonebridge Redcliff Willowmere
                  Greenhaven Northfield Larkspur Pinecrest Dunmore Elmstead Hollowell Kingsbury""")
BUILDINGS = _words("""market bakery library school station harbor museum square cafe church
                      hospital theater castle mill barn workshop lighthouse tower bookshop
                      pharmacy inn zoo bridge playground bank pier greenhouse chapel stable
                      gallery cinema fairground warehouse observatory""")
NATURE = _words("""forest river lake meadow hill valley beach field orchard pond stream woods
                   mountain island cliff marsh garden park waterfall bay moor grove lagoon cove""")

PETS = _words("cat dog rabbit hamster parrot goldfish tortoise kitten puppy canary ferret")
FARM_ANIMALS = _words("""cow pig goat sheep hen duck horse donkey goose lamb pony rooster calf
                         turkey""")
WILD_ANIMALS = _words("""fox wolf bear deer owl squirrel hedgehog badger otter beaver frog crow
                         swan eagle hawk mouse snail butterfly bee spider woodpecker mole toad
                         raven lizard""")
SEA_ANIMALS = _words("""whale dolphin seal crab turtle octopus jellyfish seagull penguin shark
                        lobster starfish""")
FAR_AWAY_ANIMALS = _words("""lion tiger elephant monkey giraffe zebra camel hippo kangaroo panda
                             rhino gorilla crocodile flamingo""")
BIRDS = _words("""robin sparrow blackbird thrush finch wren starling swallow magpie pigeon lark
                  nightingale""")


class AnimalGroup(NamedTuple):
    animals: tuple[str, ...]
    habitat: str  # completes "Most foxes live ..."
    diet: str  # completes "They eat ..."


ANIMAL_GROUPS = (
    AnimalGroup(PETS, "in houses with their owners", "the food that their owners give them"),
    AnimalGroup(FARM_ANIMALS, "on farms and in green fields", "grass, hay and grain"),
    AnimalGroup(WILD_ANIMALS, "in the forest and the fields", "whatever they find in the woods"),
    AnimalGroup(SEA_ANIMALS, "in the sea or on the coast", "fish and other small sea creatures"),
    AnimalGroup(FAR_AWAY_ANIMALS, "in warm countries far away", "whatever food they find there"),
)

FOODS = _words("""apple pear plum orange egg potato tomato carrot onion cake cookie sandwich
                  muffin peach lemon banana biscuit pancake cucumber melon sausage dumpling bun
                  pretzel waffle radish turnip apricot mushroom chestnut walnut cupcake doughnut
                  croissant pastry scone meatball omelet pickle grapefruit coconut pineapple""")
FRUITS = _words("""apple cherry plum pear peach lemon blueberry strawberry apricot raspberry
                   blackberry gooseberry""")
DISHES = ("pie", "cake", "tart", "crumble")
MEALS = ("soup", "rice", "pasta", "stew", "noodles", "beans", "fish", "chicken", "lentils",
         "spaghetti", "curry", "dumplings", "pie", "vegetables")  # cooked
BREAKFASTS = ("porridge", "toast", "oatmeal", "cereal", "yogurt", "pancakes", "eggs",
              "bread and jam", "bread and butter")
SNACKS = _words("bread cheese honey jam toast yogurt chocolate pudding custard salad soup")
VEGETABLES = _words("""carrot bean pea cabbage lettuce leek beet pumpkin onion radish potato
                       tomato cucumber turnip parsnip artichoke cauliflower pepper zucchini""")
HOT_DRINKS = ("tea", "coffee", "cocoa", "milk", "cider")
COLD_DRINKS = ("lemonade", "juice", "water", "milk")

OBJECTS = _words("""lamp box book letter key basket hat umbrella bag cup bowl plate spoon knife
                    candle map clock kite ball rope ladder bucket chair bicycle hammer brush
                    blanket pillow ring coin shell stone feather bottle jar mirror picture drum
                    camera notebook pencil envelope parcel suitcase compass lantern shovel net
                    kettle pot broom whistle teapot puzzle watch necklace vase jug tray ribbon
                    marble button badge postcard doll saucepan toolbox paintbox sketchbook
                    telescope birdhouse wheelbarrow sled rug quilt thimble globe hourglass
                    calendar diary atlas statue flag tent fan purse wallet belt harmonica spade
                    rake""")
OPENABLES = _words("""door window gate box drawer cupboard letter jar curtains shutters parcel
                      suitcase oven""")
CONTAINERS = _words("bag basket pocket box backpack sack suitcase bucket")
CLOTHING = _words("coat hat scarf boots gloves sweater jacket raincoat cap shoes apron cloak")
FURNITURE = _words("table shelf chair bed desk windowsill bench sofa stool")
ROOMS = _words("kitchen bedroom hall attic cellar study porch pantry")
TREES = _words("""oak pine birch willow apple cherry maple chestnut beech elm fir cedar poplar
                  walnut""")
FLOWERS = _words("""rose tulip daisy lily sunflower violet poppy daffodil bluebell dandelion
                    primrose orchid""")
VEHICLES = ("train", "bus", "ferry", "boat", "coach", "tram")
INSTRUMENTS = _words("""piano violin flute guitar drum trumpet cello harp accordion clarinet
                        banjo oboe saxophone recorder tuba xylophone mandolin""")
GAMES = _words("""chess cards football tennis checkers dominoes tag marbles hopscotch badminton
                  croquet volleyball backgammon charades""")
TOPICS = ("history", "music", "science", "painting", "gardening", "the stars", "the sea",  # may be
          "old castles", "birds", "trains", "cooking", "mountains", "ships", "insects")  # 2 words
RELATIVES = _words("""mother father grandmother grandfather sister brother aunt uncle cousin
                      neighbor niece nephew godmother godfather""")
SUBJECTS = _words("""mathematics history geography music art science spelling drawing biology
                     chemistry physics poetry astronomy grammar""")
SURNAMES = _words("""Fletcher Hartley Moss Bramble Thorne Ward Penrose Ashby Holloway Quill Marsh
                     Fairbanks Cobb Larkin""")

MOODS = _words("""happy sad tired hungry thirsty brave curious shy proud busy sleepy worried
                  excited calm nervous cheerful lonely grumpy bored surprised pleased glad
                  anxious joyful puzzled frightened relieved hopeful content restless confused
                  amazed embarrassed homesick""")
JOYFUL = ("happy", "glad", "cheerful", "proud", "pleased", "delighted")
TRAITS = _words("""kind clever young old gentle quiet cheerful wise honest patient generous
                   hardworking famous careful friendly funny lazy polite humble poor rich brave
                   curious stubborn thoughtful clumsy sensible lucky cautious noble merry grumpy""")
ANIMAL_TRAITS = ("beautiful", "curious", "gentle", "playful", "friendly", "graceful", "patient",
                 "interesting", "remarkable", "peaceful", "clever", "careful")  # all take "most"
THING_ADJECTIVES = _words("""old new small big little large tiny heavy broken shiny dusty wooden
                             round soft clean dirty strange beautiful pretty plain simple fancy
                             lovely precious rusty empty long short narrow wide thick thin smooth
                             rough sturdy fragile ancient colorful painted striped spotted
                             mysterious useful secret enormous delicate magic forgotten worn
                             expensive cheap red blue green yellow white black brown grey purple
                             pink golden silver elegant odd crooked polished bent scratched
                             carved woven knitted cracked faded sparkling handmade valuable
                             antique peculiar ordinary splendid""")
HOUSE_ADJECTIVES = _words("""small big little old new tall narrow wooden white yellow blue cozy
                             crooked pretty quiet stone brick""")
COLORS = _words("red blue green yellow white black brown grey orange purple pink")
WEATHER = _words("""sunny rainy cloudy windy foggy stormy snowy cold warm hot chilly mild grey
                    bright clear wet dry frosty misty gloomy""")
FAIR_WEATHER = _words("sunny warm dry bright clear mild pleasant lovely")
AIR = ("cold", "warm", "fresh", "cool", "chilly", "damp")
SKY = ("blue", "grey", "clear", "cloudy", "pale", "pink")
TASTES = ("delicious", "tasty", "excellent", "wonderful", "strange", "spicy", "simple")
CUTE = ("small", "beautiful", "funny", "big", "fast", "fluffy", "sweet")
ADVERBS = _words("""slowly quickly quietly carefully happily gently softly proudly patiently
                    eagerly nervously calmly politely cheerfully sleepily warmly silently bravely
                    neatly thoughtfully anxiously gladly loudly firmly briskly lazily kindly
                    tenderly swiftly merrily boldly shyly curiously sadly""")
CARE_ADVERBS = ("carefully", "slowly", "gently", "neatly", "patiently", "thoroughly", "quietly")
IDLE_ADVERBS = ("quietly", "happily", "softly", "for a while", "for a moment", "again", "at last",
                "a little", "all afternoon")  # phrases allowed: used only in stories

DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = _words("""January February March April May June July August September October November
                   December""")
SEASON_NAMES = ("spring", "summer", "autumn", "winter")
TIMES_OF_DAY = ("morning", "afternoon", "evening", "night")
DIRECTIONS = ("north", "south", "east", "west")
NUMBERS = _words("two three four five six seven eight nine ten eleven twelve")
HOURS = ("one",) + NUMBERS
MORNING_HOURS = ("five", "six", "seven", "eight")
EVENING_HOURS = ("eight", "nine", "ten", "eleven")
TENS = ("twenty", "thirty", "forty", "fifty", "sixty")
SCORES = NUMBERS[3:9]  # out of ten
AGES = NUMBERS[4:] + ("thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
                      "nineteen", "twenty")

# What each job does, as a verb phrase in the base form ("Every day, she bakes bread ...").
JOB_DUTIES = {
    "baker": "bake bread and cakes for the whole town",
    "farmer": "grow wheat and potatoes in the fields",
    "teacher": "teach children to read and write",
    "doctor": "look after people who are ill",
    "nurse": "care for the patients at the hospital",
    "fisherman": "catch fish in the cold sea",
    "carpenter": "build tables, chairs and cupboards",
    "painter": "paint houses and fences",
    "tailor": "sew coats and dresses",
    "miller": "grind wheat into flour",
    "blacksmith": "make tools and horseshoes",
    "gardener": "plant flowers and trim the hedges",
    "shepherd": "look after a large flock of sheep",
    "sailor": "sail ships across the sea",
    "librarian": "help people find good books",
    "cook": "prepare meals in a busy kitchen",
    "writer": "write stories for children",
    "musician": "play music at weddings and festivals",
    "shopkeeper": "sell vegetables, soap and candles",
    "builder": "build houses and walls",
    "potter": "make cups, bowls and vases from clay",
    "mechanic": "repair cars and bicycles",
    "beekeeper": "look after bees and collect honey",
    "postman": "deliver letters and parcels",
    "engineer": "design bridges and roads",
    "pilot": "fly planes to faraway cities",
    "scientist": "study plants and insects",
    "firefighter": "put out fires and rescue people",
    "waiter": "serve food in a small restaurant",
    "clockmaker": "repair old clocks and watches",
    "florist": "sell flowers and make bouquets",
    "photographer": "take pictures at weddings",
    "plumber": "fix pipes and taps in people's houses",
    "dentist": "look after people's teeth",
    "judge": "decide cases in the town court",
    "mayor": "run the town and listen to its people",
    "driver": "drive the bus between the villages",
    "sculptor": "carve statues from wood and stone",
    "jeweler": "make rings and necklaces",
    "veterinarian": "look after sick animals",
    "translator": "translate books into other languages",
    "architect": "design houses and schools",
    "astronomer": "study the stars at night",
    "chef": "cook fine meals in a famous restaurant",
    "weaver": "weave blankets and rugs",
    "locksmith": "make keys and fix locks",
    "cobbler": "mend shoes and boots",
    "innkeeper": "run the inn by the road",
}

# Verb groups a template can draw from, e.g. {v:handle} -> "polished" / "polishes".
VERB_GROUPS = {
    "motion": ("walk", "run", "hurry", "wander", "stroll", "cycle", "drive", "ride", "march",
               "rush", "jog", "dash", "trudge", "hike", "sprint", "amble"),
    "handle": ("carry", "find", "drop", "hide", "pack", "borrow", "buy", "sell", "lift", "move",
               "bring", "hold", "drag", "shake", "lose", "keep", "grab", "fetch", "collect",
               "share", "swap"),
    "care": ("clean", "polish", "wash", "mend", "repair", "dry", "fix", "examine", "inspect",
             "check", "wrap", "fold", "decorate", "paint", "sketch", "measure", "weigh", "dust",
             "sort", "label", "oil", "sharpen", "arrange", "admire", "study"),
    "observe": ("see", "watch", "spot", "notice", "hear", "draw", "photograph", "count",
                "admire", "follow", "study", "sketch"),
    "idle": ("smile", "laugh", "sing", "dance", "rest", "wait", "listen", "nod", "sigh", "yawn",
             "whistle", "hum", "think", "dream", "stretch", "relax", "wave", "shiver", "giggle",
             "clap", "blush", "frown", "cheer", "pause", "read", "sleep", "grin", "snore",
             "shrug", "chuckle", "doze", "hesitate", "tremble", "sneeze", "cough", "wink",
             "ponder"),
}

# The slot names a template may use, e.g. {animal} or {pl:flower}.
VOCAB = {
    "town": TOWNS, "building": BUILDINGS, "nature": NATURE, "place": BUILDINGS + NATURE,
    "pet": PETS, "wild": WILD_ANIMALS, "bird": BIRDS,
    "local_animal": FARM_ANIMALS + WILD_ANIMALS + BIRDS,
    "animal": PETS + FARM_ANIMALS + WILD_ANIMALS + SEA_ANIMALS + FAR_AWAY_ANIMALS,
    "food": FOODS, "fruit": FRUITS, "vegetable": VEGETABLES, "dish": DISHES, "meal": MEALS,
    "breakfast": BREAKFASTS, "snack": SNACKS, "hot_drink": HOT_DRINKS, "cold_drink": COLD_DRINKS,
    "object": OBJECTS, "openable": OPENABLES, "container": CONTAINERS, "clothing": CLOTHING,
    "furniture": FURNITURE, "room": ROOMS, "tree": TREES, "flower": FLOWERS,
    "vehicle": VEHICLES, "instrument": INSTRUMENTS, "game": GAMES, "topic": TOPICS,
    "relative": RELATIVES, "job": tuple(JOB_DUTIES), "subject": SUBJECTS, "surname": SURNAMES,
    "mood": MOODS, "joy": JOYFUL, "trait": TRAITS, "animal_trait": ANIMAL_TRAITS,
    "thing_adj": THING_ADJECTIVES, "house_adj": HOUSE_ADJECTIVES, "color": COLORS,
    "weather": WEATHER, "fair_weather": FAIR_WEATHER, "air": AIR, "sky": SKY, "taste": TASTES,
    "cute": CUTE, "adverb": ADVERBS, "idle_adverb": IDLE_ADVERBS, "care_adverb": CARE_ADVERBS,
    "day": DAYS, "month": MONTHS, "season": SEASON_NAMES, "time_of_day": TIMES_OF_DAY,
    "direction": DIRECTIONS, "number": NUMBERS, "few": NUMBERS[:3], "score": SCORES,
    "clock": HOURS, "morning_hour": MORNING_HOURS, "evening_hour": EVENING_HOURS, "tens": TENS,
    "age": AGES,
}

# --------------------------------------------------------------------------------------
# English morphology: just enough rules for the words above.
# --------------------------------------------------------------------------------------

IRREGULAR_PAST = {
    "have": "had", "do": "did", "go": "went", "run": "ran", "ride": "rode", "drive": "drove",
    "find": "found", "hide": "hid", "sell": "sold", "buy": "bought", "keep": "kept",
    "bring": "brought", "take": "took", "hold": "held", "see": "saw", "hear": "heard",
    "sing": "sang", "think": "thought", "eat": "ate", "drink": "drank", "sit": "sat", "put": "put",
    "get": "got", "give": "gave", "come": "came", "make": "made", "meet": "met", "feel": "felt",
    "sleep": "slept", "wake": "woke", "read": "read", "write": "wrote", "begin": "began",
    "become": "became", "say": "said", "tell": "told", "know": "knew", "fly": "flew",
    "teach": "taught", "catch": "caught", "build": "built", "grow": "grew", "hang": "hung",
    "cut": "cut", "shake": "shook", "lose": "lost", "draw": "drew", "send": "sent",
    "speak": "spoke", "shine": "shone", "forget": "forgot", "grind": "ground", "wear": "wore",
    "ring": "rang", "dig": "dug", "lie": "lay", "feed": "fed", "swim": "swam", "weave": "wove",
}
# Verbs that double their last consonant before -ed (stop -> stopped).
DOUBLING_VERBS = _words("stop drop plan hum nod clap grab spot wrap drag jog grin shrug swap")
IRREGULAR_PLURAL = {
    "mouse": "mice", "goose": "geese", "sheep": "sheep", "deer": "deer", "fish": "fish",
    "goldfish": "goldfish", "jellyfish": "jellyfish", "starfish": "starfish", "knife": "knives",
    "wolf": "wolves", "scarf": "scarves", "potato": "potatoes", "tomato": "tomatoes",
    "child": "children", "calf": "calves", "fisherman": "fishermen", "postman": "postmen",
}
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
        forms = {("past", False): "was", ("past", True): "were",
                 ("present", False): "is", ("present", True): "are"}
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

    def __init__(self, rng: random.Random, tense: str, hero: Character, friend: Character,
                 bound: dict[str, str] | None = None, topic: dict | None = None):
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
# Stories
# --------------------------------------------------------------------------------------

class Season(NamedTuple):
    name: str
    months: tuple[str, ...]
    weather: tuple[str, ...]
    clothing: tuple[str, ...]
    details: tuple[str, ...]  # whole sentences in the present tense
    pastimes: tuple[str, ...]  # complete "she can ..."


SEASONS = (
    Season("winter", ("December", "January", "February"), ("cold", "snowy", "frosty", "grey"),
           ("coat", "scarf", "gloves", "boots"),
           ("Snow covers the roofs and the roads, and the lakes freeze.",
            "The nights are long, and people light fires in their houses.",
            "In the morning, there is frost on every window."),
           ("go skating on the frozen lake", "build a snowman in the garden",
            "sit by the fire with a good book", "drink hot cocoa after a long walk")),
    Season("spring", ("March", "April", "May"), ("mild", "rainy", "fresh", "bright"),
           ("raincoat", "jacket", "boots"),
           ("The trees turn green, and the first flowers open in the gardens.",
            "Farmers plant seeds in the fields, and the lambs are born.",
            "It rains often, but the sun always comes back."),
           ("plant seeds in the garden", "watch the birds build their nests",
            "pick the first flowers", "ride a bicycle in the park")),
    Season("summer", ("June", "July", "August"), ("hot", "sunny", "warm", "dry"),
           ("hat", "sandals", "shirt"),
           ("The days are long, and the evenings are warm.",
            "The fields are full of wheat, and the gardens are full of roses.",
            "Children play outside until it gets dark."),
           ("swim in the lake", "sleep outside under the stars", "eat ice cream on the beach",
            "go fishing in the river")),
    Season("autumn", ("September", "October", "November"), ("windy", "foggy", "cool", "wet"),
           ("sweater", "jacket", "scarf", "raincoat"),
           ("The leaves turn red and gold and fall from the trees.",
            "Farmers bring in the harvest, and the orchards are full of apples.",
            "The wind blows hard, and the first storms arrive from the sea."),
           ("collect chestnuts in the forest", "jump into piles of leaves",
            "pick apples in the orchard", "fly a kite on the hill")),
)


def _season_topic(rng: random.Random) -> dict:
    season = rng.choice(SEASONS)
    return {"season": (season.name,), "month": season.months, "weather": season.weather,
            "clothing": season.clothing, "season_detail": season.details,
            "pastime": season.pastimes}


def _animal_topic(rng: random.Random) -> dict:
    group = rng.choice(ANIMAL_GROUPS)
    return {"animal": (rng.choice(group.animals),), "habitat": (group.habitat,),
            "diet": (group.diet,)}


class ParagraphKind(NamedTuple):
    tense: str
    openings: tuple[str, ...]
    body: tuple[str, ...]  # in story order; a paragraph uses a few of them, order kept
    closings: tuple[str, ...]
    uses_everyday: bool = True  # may mix in EVERYDAY sentences
    topic: Callable[[random.Random], dict] | None = None


# Tense-neutral sentences about the hero's day, mixed into many kinds of paragraph.
EVERYDAY = (
    "{hero} {v:open} the door and {v:look} outside.",
    "{he} {v:open} the window and {v:listen} to the {pl:bird}.",
    "When {he} {v:hear} a knock, {he} {v:open} the door.",
    "The room {v:be} warm, so {he} {v:open} the window.",
    "{he} {v:open} the {openable} {care_adverb}.",
    "{hero} {v:close} the door behind {him}.",
    "{he} {v:pick} up the {object=thing} and {v:put} it in {his} {container}.",
    "{he} {v:care} the {thing_adj} {object=thing} {care_adverb}.",
    "{hero} {v:idle} {idle_adverb}.",
    "{his} {pet=pet} {v:sleep} by the fire.",
    "The {pet=pet} {v:be} {mood} and {v:want} to play.",
    "{he} {v:give} the {pet=pet} some water and something to eat.",
    "{friend} {v:come} to visit in the afternoon.",
    "{hero} and {friend} {vp:play} {game} in the {room}.",
    "Outside, the {pl:bird} {vp:be} singing in the {tree} trees.",
    "{he} {v:write} a letter to {his} {relative=rel}.",
    "{he} {v:look} out of the window and {v:see} that it {v:be} {weather}.",
    "{he} {v:drink} a cup of {hot_drink} and {v:eat} a {food}.",
    "{hero} {v:feel} {mood}, so {he} {v:sit} down for a while.",
    "{hero} {v:count} the {pl:object} on the {furniture}: there {vp:be} {number} of them.",
    "{he} {v:hang} {his} {clothing} on the hook by the door.",
    "{he} {v:motion} to the {place} with {his} {pet=pet}.",
    "{he} {v:put} on {his} {clothing} and {v:go} outside.",
    "{hero} {v:practice} the {instrument} until {his} fingers {vp:be} tired.",
    "{he} {v:find} a {thing_adj} {object} under the {furniture}.",
    "{hero} {v:observe} the {pl:bird} by the {nature} for a long time.",
    "On the way home, {he} {v:meet} {friend}, and they {vp:talk} about the weather.",
    "{hero} {v:help} {his} {relative=rel} to clean the {room}.",
    "The whole house {v:smell} of fresh bread.",
    "The next morning, {he} {v:wake} up early and {v:motion} to the {place}.",
)

FAIRY_TALE = ParagraphKind(
    tense="past",
    openings=(
        "Once upon a time, there was a {trait} {job=job} named {hero} who lived in {town=town}.",
        "Once upon a time, in the village of {town=town}, there lived a {trait} {job=job} "
        "called {hero}.",
        "Once upon a time, {hero} and {his} {pet=pet} lived in a little house at the edge of "
        "the {nature=home}.",
        "Once upon a time, there was a {mood} {pet=pet} that belonged to a {trait} {job=job} "
        "named {hero}.",
        "Long ago, in a {house_adj} house near the {nature=home}, there lived a {trait} "
        "{job=job} named {hero}.",
    ),
    body=(
        "{his} {relative=rel} often {v:tell} stories that {v:begin} with once upon a time.",
        "Every morning, {he} {v:walk} to the {nature=home} to look for {pl:flower}.",
        "One day, {he} {v:find} a {thing_adj} {object=thing} under an old {tree} tree.",
        "{he} {v:pick} up the {object=thing} and {v:look} at it {adverb}.",
        '"What a {thing_adj} {object=thing}!" {v:say} {hero}.',
        "Nobody in {town=town} {v:know} where the {object=thing} {v:come} from.",
        "{hero} {v:decide} to show the {object=thing} to {his} {relative=rel}.",
        "The {pet=pet} {v:follow} {him} all the way to the {place}.",
        "Suddenly, the sky {v:turn} dark, and it {v:begin} to rain.",
        "That evening, {he} {v:open} the door and {v:see} a {mood} {wild=visitor} in the garden.",
        '"Please help me," {v:say} the {wild=visitor}. "I have lost my way."',
        "The {wild=visitor} {v:look} hungry, so {hero} {v:give} it a piece of bread.",
        "The old {wild=visitor} {v:tell} {him} a secret about the {nature}.",
        "{he} {v:be} so {joy} that {he} {v:sing} all the way home.",
        "At night, the stars {vp:shine} brightly over the {nature=home}.",
    ),
    closings=(
        "And from that day on, {hero} and the {pet=pet} {vp:be} the best of friends.",
        "In the end, everyone in {town=town} {v:be} happy, and {hero} {v:live} there for many "
        "years.",
        "That night, {hero} {v:sleep} well and {v:dream} of {pl:animal} and {pl:flower}.",
        "And that is how {hero} {v:become} the most famous {job=job} in {town=town}.",
        "{hero} never {v:forget} that day.",
    ),
)

OUTING = ParagraphKind(
    tense="past",
    openings=(
        "On {day=day}, {hero} {v:wake} up early and {v:call} {friend}.",
        "Last {day=day}, {hero} and {friend} {vp:go} to the {place=dest}.",
        "It {v:be} a {weather} {day=day} morning in {month}, and {hero} {v:want} to visit the "
        "{place=dest}.",
        "One {fair_weather} morning, {hero} {v:decide} to go to the {place=dest} with {friend}.",
        "Early on {day=day} morning, {hero} {v:hear} a knock at the door. It {v:be} {friend}.",
    ),
    body=(
        '"Let us go to the {place=dest}," {v:say} {friend}.',
        "{hero} {v:walk} to the {place=dest} with {friend}.",
        "On the way, they {vp:see} {number} {pl:local_animal} near the {nature}.",
        "The air {v:be} {air}, and the sky {v:be} {sky}.",
        "At the {building}, {hero} {v:buy} {number} {pl:food} and a bottle of {cold_drink}.",
        "{friend} {v:want} to buy a {thing_adj} {object}, but it {v:be} too expensive.",
        "The {place=dest} {v:be} full of people, so they {vp:wait} outside for a while.",
        "{hero} {v:sit} down on a bench and {v:eat} a {food}.",
        "At noon, they {vp:eat} {snack} and {pl:food} by the {nature}.",
        '"Look at that {local_animal=seen}!" {v:say} {friend}. "It is so {cute}."',
        "{hero} {v:take} a picture of the {local_animal=seen} with {his} camera.",
        "{friend} {v:tell} a funny story, and {hero} {v:laugh} so much that {he} {v:drop} "
        "{his} {object}.",
        "They {vp:stay} at the {place=dest} until the sun {v:go} down.",
        "On the way home, it {v:start} to rain, so they {vp:run} the rest of the way.",
    ),
    closings=(
        "When {hero} {v:get} home, {he} {v:be} tired but happy.",
        "It {v:be} a wonderful day, and {hero} {v:want} to go back to the {place=dest} next "
        "{day=day}.",
        "That evening, {hero} {v:write} about the day in {his} diary.",
    ),
    uses_everyday=False,
)

TRAVEL = ParagraphKind(
    tense="past",
    openings=(
        "Last {month}, {hero} and {friend} {vp:take} the {vehicle} from {town=town} to "
        "{town=goal}.",
        "On {day}, {hero} {v:travel} to {town=goal} to visit {his} {relative=rel}.",
        "In {month}, {hero} {v:go} on a long journey to {town=goal}.",
    ),
    body=(
        "{town=goal} {v:lie} far to the {direction}, beyond the hills.",
        "The trip {v:take} {number} hours.",
        "{hero} {v:sit} by the window and {v:watch} the fields and villages go by.",
        "{he} {v:read} a book about {topic} and {v:eat} {number} {pl:food}.",
        "When {he} {v:arrive} in {town=goal}, it {v:be} {weather}.",
        "{his} {relative=rel} {v:be} waiting at the station with a {color} umbrella.",
        "{he} {v:stay} in a small hotel near the {building}.",
        "On the first day, {he} {v:visit} the {building} and {v:walk} by the {nature}.",
        "The people in {town=goal} {vp:be} very {trait}.",
        "The food there {v:be} {taste}, especially the {meal}.",
        "{hero} {v:buy} a {thing_adj} {object} as a present for {his} {relative=rel}.",
        "Every evening, {he} {v:send} a postcard to {friend}.",
        "On the last day, {he} {v:walk} along the {nature} and {v:watch} the sunset.",
    ),
    closings=(
        "It {v:be} a wonderful trip, and {hero} {v:want} to go back next {season}.",
        "{hero} {v:return} home on {day}, tired but happy.",
        "When {he} {v:get} home, {he} {v:tell} everyone about {town=goal}.",
    ),
    uses_everyday=False,
)

BAKING = ParagraphKind(
    tense="past",
    openings=(
        "On {day}, {hero} {v:decide} to bake a {fruit=fruit} {dish=dish} for {friend}.",
        "{friend} {v:be} coming for dinner, so {hero} {v:want} to make a {fruit=fruit} "
        "{dish=dish}.",
        "It {v:be} {friend}'s birthday, and {hero} {v:plan} to bake a {fruit=fruit} {dish=dish}.",
    ),
    body=(
        "{he} {v:need} flour, butter, sugar and {number} {pl:fruit=fruit}.",
        "First, {he} {v:wash} the {pl:fruit=fruit} and {v:cut} them into small pieces.",
        "Then {he} {v:mix} the flour, the butter and the sugar in a big bowl.",
        "{his} {pet=pet} {v:watch} {him} from the corner of the kitchen.",
        "{hero} {v:put} the {dish=dish} in the oven and {v:wait} for {tens} minutes.",
        "Soon the whole kitchen {v:smell} of warm {pl:fruit=fruit} and sugar.",
        "When the {dish=dish} {v:be} ready, {he} {v:carry} it to {friend}'s house.",
        '"This is the best {dish=dish} I have ever eaten," {v:say} {friend}.',
        "They {vp:eat} the whole {dish=dish} and {vp:drink} {number} cups of {hot_drink}.",
    ),
    closings=(
        "{friend} {v:ask} for the recipe, and {hero} {v:write} it down on a card.",
        "After that, {hero} {v:bake} a {fruit=fruit} {dish=dish} every {day}.",
        "There {v:be} nothing left but crumbs.",
    ),
)

CONVERSATION = ParagraphKind(
    tense="past",
    openings=(
        "{hero} {v:meet} {friend} at the {place} on {day}.",
        "{friend} {v:visit} {hero} one {weather} afternoon.",
        "{hero} and {friend} {vp:sit} together in the {room}.",
    ),
    body=(
        '"Good morning, {friend}!" {v:say} {hero}. "Good morning, {hero}," {v:reply} {friend}.',
        '"Where are you going?" {v:ask} {friend}. "I am going to the {place}," {v:answer} {hero}.',
        '"What day is it today?" {v:ask} {hero}. "Today is {day}," {v:say} {friend}.',
        '"Can I have some {snack}, please?" {v:ask} {hero}. "Of course," {v:say} {his} {relative}.',
        '"Is it going to rain?" {v:ask} {hero}. "No, I think it will be {fair_weather} today," '
        '{v:say} {friend}.',
        '"What is your favorite animal?" {v:ask} {friend}. "I like {pl:animal} best," {v:say} '
        '{hero}.',
        '"How old are you?" {v:ask} {friend}. "I am {age} years old," {v:answer} {hero}.',
        '"Thank you for the {object}," {v:say} {hero}. "You are welcome," {v:reply} {friend}.',
        '"Do you want to play {game}?" {v:ask} {friend}. "Yes, I would love to," {v:say} {hero}.',
        '"Where is my {object}?" {v:ask} {hero}. "It is on the {furniture} in the {room}," '
        '{v:say} {his} {relative}.',
        '"What time is it?" {v:ask} {hero}. "It is {clock} o\'clock," {v:say} {friend}.',
        '"Why are you so sad?" {v:ask} {friend}. "Because I lost my {object}," {v:whisper} '
        '{hero}.',
        '"Would you like a cup of {hot_drink}?" {v:ask} {friend}. "Yes, please," {v:say} {hero}.',
        '"How many {pl:local_animal=counted} did you see?" {v:ask} {friend}. "I saw '
        '{number} {pl:local_animal=counted}," {v:say} {hero}.',
        '"Did you see the {local_animal}?" {v:ask} {hero}. "Yes, it was near the {nature}," '
        '{v:say} {friend}.',
        '"I am hungry," {v:say} {hero}. "Let us eat some {snack}," {v:reply} {friend}.',
        '"What do you want to be when you grow up?" {v:ask} {friend}. "I want to be a {job}," '
        '{v:say} {hero}.',
        '"How much is this {object}?" {v:ask} {hero}. "It costs {number} coins," {v:say} the '
        'shopkeeper.',
    ),
    closings=(
        '"See you tomorrow," {v:say} {hero}, and {he} {v:go} home.',
        "Then they {vp:laugh} and {vp:walk} home together.",
        "They {vp:talk} for a long time, until it {v:be} dark outside.",
    ),
    uses_everyday=False,
)

ROUTINE = ParagraphKind(
    tense="present",
    openings=(
        "Every {day}, {hero} {v:walk} to the {building} in {town=town}.",
        "{hero} {v:live} in a {house_adj} house in {town=town} with {his} {relative=rel} and "
        "{few} {pl:pet=pet}.",
        "{hero} {v:get} up at {morning_hour} o'clock every morning.",
    ),
    body=(
        "First, {he} {v:wash} {his} face and {v:brush} {his} teeth.",
        "Then {he} {v:eat} {breakfast} for breakfast and {v:drink} a cup of {hot_drink}.",
        "After breakfast, {he} {v:feed} the {pl:pet=pet}.",
        "On the way to the {building}, {he} usually {v:meet} {friend}.",
        "{he} {v:like} to read books about {topic}.",
        "In the afternoon, {he} {v:play} {game} with {friend}.",
        "On {pl:day}, {he} {v:practice} the {instrument} for an hour.",
        "In the evening, {he} {v:cook} {meal} for {his} family.",
        "Before bed, {he} {v:read} a chapter of {his} favorite book.",
    ),
    closings=(
        "{hero} {v:go} to bed at {evening_hour} o'clock.",
        "It {v:be} a quiet life, but {hero} {v:like} it very much.",
        "On {pl:day}, {hero} {v:rest} and {v:do} nothing at all.",
    ),
)

WORK = ParagraphKind(
    tense="present",
    openings=(
        "{hero} {v:work} as a {job=job} in {town=town}.",
        "{hero} {v:be} a {trait} {job=job} who {v:live} in {town=town}.",
    ),
    body=(
        "Every day, {he} {v:duty}.",
        "{he} {v:start} work at {morning_hour} o'clock every morning.",
        "Most days, {he} {v:be} very busy.",
        "{his} favorite part of the job {v:be} talking to people.",
        "At lunch, {he} {v:eat} a {food} and {v:talk} with the other {pl:job=job}.",
        "When {he} {v:be} tired, {he} {v:take} a short walk to the {nature}.",
        "Some days are hard, but {hero} {v:love} {his} work.",
        "{his} {relative=rel} {v:say} that {hero} {v:be} the best {job=job} in {town=town}.",
        "{he} {v:earn} enough money to buy {snack} and {pl:food} for the week.",
    ),
    closings=(
        "{hero} {v:hope} to work as a {job=job} for many more years.",
        "In the evening, {he} {v:go} home and {v:rest}.",
    ),
)

ANIMAL_FACTS = ParagraphKind(
    tense="present",
    openings=(
        "{pl:animal} {vp:be} {animal_trait} animals.",
        "Have you ever seen a {animal}?",
    ),
    body=(
        "Most {pl:animal} {vp:live} {habitat}.",
        "They {vp:eat} {diet}.",
        "A young {animal} {v:stay} close to its mother for many weeks.",
        "{pl:animal} {vp:be} most active in the {time_of_day}.",
        "In {season}, {pl:animal} {vp:look} for a warm place to rest.",
        "{hero} {v:have} seen {number} {pl:animal} this year.",
        "Children in {town} {vp:love} to draw pictures of {pl:animal}.",
        "{hero} {v:keep} a notebook with drawings of every {animal} {he} {v:see}.",
    ),
    closings=(
        "{hero} {v:think} that {pl:animal} {vp:be} the most {animal_trait} animals in the world.",
        "If you {vp:be} quiet and patient, you can watch a {animal} for a long time.",
    ),
    uses_everyday=False,
    topic=_animal_topic,
)

SEASONAL = ParagraphKind(
    tense="present",
    openings=(
        "In {town=town}, {season} is usually {weather=w1} and {weather=w2}.",
        "{season} {v:be} {hero}'s favorite time of the year.",
    ),
    body=(
        "{season_detail}",
        "In {month}, the weather {v:be} often {weather}.",
        "{hero} {v:like} {season} because {he} can {pastime=p1}.",
        "Many people in {town=town} {vp:like} to {pastime=p2} in {month}.",
        "{hero} always {v:wear} {his} {clothing} when it {v:be} {weather}.",
        "The radio says that tomorrow will be {weather} again.",
    ),
    closings=(
        "{hero} {v:be} already looking forward to next {season}.",
        "Every season has its own beauty, but {hero} {v:love} {season} the most.",
    ),
    uses_everyday=False,
    topic=_season_topic,
)

LETTER = ParagraphKind(
    tense="present",
    openings=(
        "Dear {friend}, I am writing to you from {town=town}.",
        "Dear {friend}, thank you for your letter and for the {thing_adj} {object}.",
        "Dear {friend}, I hope you are well and that your {pet} is happy.",
    ),
    body=(
        "The weather here is {weather}, and the {pl:flower} in the garden are beginning to open.",
        "Yesterday I went to the {place} with my {relative=rel}.",
        "We saw {number} {pl:local_animal} and a very old {tree} tree.",
        "I have started to learn the {instrument}, but it is very difficult.",
        "Every morning I walk to the {building} and buy fresh bread.",
        "My {relative=rel} says hello and asks when you will visit us.",
        "Next {day}, we are going to have a picnic by the {nature}.",
        "Do you still play {game} on {pl:day}?",
        "I found a {thing_adj} {object} in the attic, and I will show it to you soon.",
    ),
    closings=(
        "Please write back soon and tell me all your news. Love, {hero}",
        "I miss you very much. Your friend, {hero}",
        "See you in {month}! With best wishes, {hero}",
    ),
    uses_everyday=False,
)

SCHOOL = ParagraphKind(
    tense="past",
    openings=(
        "On {day}, {hero} and {friend} {vp:walk} to school together.",
        "{hero} {v:be} in the same class as {friend} at the little school in {town=town}.",
    ),
    body=(
        "The school day {v:start} at {morning_hour} o'clock, when the bell {v:ring}.",
        "The teacher, Miss {surname=teacher}, {v:write} the date on the blackboard.",
        "{hero}'s favorite subject {v:be} {subject=liked}, but {he} {v:find} {subject=hard} "
        "difficult.",
        "In the first lesson, the children {vp:learn} about {topic}.",
        "At break, {hero} and {friend} {vp:play} {game} in the yard.",
        "For lunch, {he} {v:have} {meal} and a {food}.",
        "In the afternoon, the class {v:go} to the {building} to learn about {topic}.",
        "{hero} {v:get} {score} out of ten in the {subject} test.",
        "Miss {surname=teacher} {v:read} the class a story about a {trait} {job}.",
    ),
    closings=(
        "After school, {he} {v:do} {his} homework at the kitchen table.",
        "When the last bell {v:ring}, everyone {v:run} outside.",
    ),
)

GARDEN = ParagraphKind(
    tense="present",
    openings=(
        "{hero} {v:have} a small garden behind {his} house in {town=town}.",
        "Every year, {hero} {v:grow} {pl:vegetable=veg} and {pl:flower} in {his} garden.",
    ),
    body=(
        "In spring, {he} {v:dig} the soil and {v:plant} the seeds in straight rows.",
        "{he} {v:water} the plants every evening with a {color} watering can.",
        "Snails love to eat the young {pl:vegetable=veg}, so {he} {v:check} them every morning.",
        "{his} {pet=pet} {v:like} to sleep in the sun between the {pl:flower}.",
        "The {pl:bird} {vp:come} every morning to look for worms.",
        "When it {v:be} too dry, {he} {v:carry} buckets of water from the well.",
        "By the end of summer, the {pl:vegetable=veg} {vp:be} ready to pick.",
        "{he} {v:give} a basket of {pl:vegetable=veg} to {friend}.",
    ),
    closings=(
        "For {hero}, there {v:be} no better place in the world than {his} garden.",
        "In the evening, {he} {v:sit} on the bench and {v:enjoy} the smell of the {pl:flower}.",
    ),
)

MARKET = ParagraphKind(
    tense="past",
    openings=(
        "On {day=day} morning, {hero} {v:take} a big basket and {v:go} to the market in "
        "{town=town}.",
        "The market in {town=town} {v:be} open every {day=day}, and {hero} never {v:miss} it.",
    ),
    body=(
        "The stalls {vp:be} full of {pl:vegetable}, {pl:fruit} and fresh fish.",
        "{hero} {v:buy} {number} {pl:food}, a loaf of bread and a piece of cheese.",
        "An old woman {v:sell} {him} a jar of honey for {number} coins.",
        "{he} {v:stop} to listen to a man who {v:be} playing the {instrument}.",
        "There {v:be} a long line at the cheese stall, so {he} {v:wait} patiently.",
        "{friend} {v:be} selling {pl:flower} at a small stall near the fountain.",
        '"How much are the {pl:fruit}?" {v:ask} {hero}. "{number} coins a bag," {v:say} the '
        'farmer.',
        "By noon, {his} basket {v:be} so heavy that {he} could hardly carry it.",
    ),
    closings=(
        "{hero} {v:walk} home slowly, with {his} basket full of good things.",
        "That evening, {he} {v:cook} a big dinner with everything {he} {v:buy}.",
    ),
    uses_everyday=False,
)

PARAGRAPH_KINDS = (FAIRY_TALE, OUTING, TRAVEL, BAKING, CONVERSATION, ROUTINE, WORK,
                   ANIMAL_FACTS, SEASONAL, LETTER, SCHOOL, GARDEN, MARKET)
# Tags that stay bound across the paragraphs of one story, so the hero keeps a home town,
# a pet, a job and a favorite relative.
STORY_TAGS = ("town", "pet", "job", "rel")


def _paragraph(rng: random.Random, kind: ParagraphKind, hero: Character, friend: Character,
               bound: dict[str, str]) -> str:
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
# Long-range dependencies
# --------------------------------------------------------------------------------------

# Past-tense actions for the cue's sentence; rendered with the cue as hero.
CUE_ACTIONS = (
    "{v:idle}", "{v:open} the {openable}", "{v:handle} the {object}",
    "{v:handle} the {thing_adj} {object}", "{v:watch} the {pl:animal}",
    "{v:pick} up the {object}", "{v:put} on {his} {clothing}", "{v:eat} a {food}",
    "{v:write} a letter to {friend}", "{v:motion} to the {place}", "{v:feed} the {pet}",
    "{v:buy} {number} {pl:flower} for {friend}",
)
NAME_ENDINGS = ("went home.", "sat down to rest.", "locked the door.", "had a cup of tea.",
                "fell asleep.", "sang a song.", "called a friend.", "laughed out loud.",
                "looked at the sky.", "wrote it all down.")
COUNT_VERBS = ("packed", "bought", "collected", "carried", "found", "picked")
COUNTABLES = _words("""apples eggs coins stamps shells marbles pencils candles plums buttons
                       postcards cookies chestnuts ribbons""")

# Exact-length building blocks for the words between a cue and its target.
TIME_PHRASES = {1: ("later", "afterwards", "soon"),
                2: ("that evening", "that night", "soon after", "next morning"),
                3: ("the next morning", "an hour later", "after a while", "later that day"),
                4: ("early the next morning", "a little while later", "late that same evening")}
ROUTE_PREFIXES = ("near", "behind", "after visiting", "before visiting", "while looking for",
                  "on the way to", "after a long walk to")  # each followed by landmarks
ERRAND_STARTS = ("after", "before", "while")  # each followed by errands
ERRANDS = ("passing", "visiting", "leaving", "walking past", "stopping at", "looking at",
           "waiting near", "resting by")  # each followed by one landmark
LANDMARKS = BUILDINGS + NATURE
LANDMARK_MOODS = _words("quiet busy empty sunny muddy dark windy famous")
LANDMARK_SIZES = _words("big small old new little narrow ancient tall")
LANDMARK_RELATIONS = ("near", "by", "behind", "beside")


def _landmark(rng: random.Random, size: int, used: set[str]) -> list[str]:
    """A landmark of 2 to 6 words, from 'the mill' to 'the old mill near the river'.

    Nouns already in used are avoided, so a list names each place once while it can.
    """
    if size >= 5:
        head = _landmark(rng, size - 3, used)
        return [*head, rng.choice(LANDMARK_RELATIONS), *_landmark(rng, 2, used)]
    noun = rng.choice([n for n in LANDMARKS if n not in used] or LANDMARKS)
    used.add(noun)
    if rng.random() < 0.3:  # mixed number, so the nearest noun says nothing about agreement
        noun = plural(noun)
    adjectives = [rng.choice(LANDMARK_MOODS), rng.choice(LANDMARK_SIZES)][4 - size:]
    return ["the", *adjectives, noun]


def _errand(rng: random.Random, size: int, used: set[str]) -> list[str]:
    """An errand of 3 to 8 words: 'passing the mill', 'stopping at the old bakery'.

    Like landmarks, errands already in used are avoided while others fit.
    """
    fitting = [e for e in ERRANDS if 2 <= size - len(e.split()) <= 6]
    errand = rng.choice([e for e in fitting if e not in used] or fitting)
    used.add(errand)
    return errand.split() + _landmark(rng, size - len(errand.split()), used)


Phrase = Callable[[random.Random, int, set[str]], list[str]]


def _series(rng: random.Random, length: int, phrase: Phrase, shortest: int, longest: int,
            used: set[str]) -> list[str]:
    """Exactly length words: one phrase, or several joined as 'A, B and C'.

    Each phrase has shortest to longest words, and longest >= 2 * shortest, so every
    length from shortest up can be reached.
    """
    if length <= longest and (length <= 2 * shortest or rng.random() < 0.4):
        return phrase(rng, length, used)
    sizes: list[int] = []
    remaining = length - 1  # one word goes to the final "and"
    while remaining:
        fits = [s for s in range(shortest, longest + 1)
                if (s == remaining and sizes) or remaining - s >= shortest]
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
        return [rng.choice(ERRAND_STARTS), *_series(rng, length - 1, _errand, 3, 8, set())]
    prefix = rng.choice([p for p in ROUTE_PREFIXES if len(p.split()) <= length - 2]).split()
    return prefix + _series(rng, length - len(prefix), _landmark, 2, 6, set())


class AgreementTopic(NamedTuple):
    nouns: tuple[str, ...]  # subjects, never the same in singular and plural
    verbs: tuple[str, ...]  # past tense, object of a relative clause ("that the farmer fed")
    adjectives: tuple[str, ...]  # predicates ("are hungry")


AGREEMENT_TOPICS = (
    AgreementTopic(("dog", "cat", "horse", "goat", "duck", "rabbit", "pony", "hen", "puppy",
                    "kitten", "cow", "pig", "donkey", "goose", "fox", "owl", "mouse"),
                   ("fed", "washed", "brushed", "found", "saw", "heard", "photographed",
                    "followed", "counted", "chased"),
                   ("hungry", "tired", "sleepy", "noisy", "calm", "muddy", "happy", "restless",
                    "quiet", "clean", "friendly", "shy", "young", "old")),
    AgreementTopic(("box", "basket", "lamp", "chair", "bucket", "ladder", "bottle", "jar", "bag",
                    "book", "suitcase", "crate", "barrel", "table", "kettle"),
                   ("carried", "painted", "sold", "bought", "found", "cleaned", "moved",
                    "mended", "opened", "dropped"),
                   ("heavy", "old", "new", "dusty", "clean", "broken", "empty", "full",
                    "expensive", "small", "wooden", "useful")),
)
AGENTS = _words("farmer baker shepherd neighbor teacher girl boy child visitor gardener driver")
NEARBY = ("outside", "nearby", "upstairs", "downstairs", "here", "there")
PREPOSITIONS = ("near", "behind", "beside", "by")  # suit any landmark


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
    noun = rng.choice(topic.nouns)
    words = ["The", plural(noun) if is_plural else noun]
    if distance == 1:
        words.append(rng.choice(NEARBY))
    elif distance == 2:
        words += [rng.choice(("in", "from", "near")), rng.choice(TOWNS)]
    elif distance >= 4 and rng.random() < 0.5:
        agent = rng.choice(AGENTS)
        agent = plural(agent) if rng.random() < 0.5 else agent
        words += ["that", "the", agent, rng.choice(topic.verbs), *_adverbial(rng, distance - 4)]
    else:
        words += [rng.choice(PREPOSITIONS), *_series(rng, distance - 1, _landmark, 2, 6, set())]
    past = rng.random() < 0.5
    verb = conjugate("be", "past" if past else "present", is_plural)
    target = len(words)
    words += [verb, rng.choice(topic.adjectives) + "."]
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
    count, things = rng.choice(NUMBERS), rng.choice(COUNTABLES)
    adverbial = _adverbial(rng, distance - 5)
    words = [hero.name, rng.choice(COUNT_VERBS), count, things + ",", "and", *adverbial]
    if len(adverbial) >= 3:
        words[-1] += ","
    words += [PRONOUNS[hero.gender]["he"], "still", "had"]
    target = len(words)
    words += [count, things + "."]
    return words, 2, target, "number"


class Frame(NamedTuple):
    min_distance: int
    build: Callable[[random.Random, int], FrameWords]


FRAMES = (Frame(1, _agreement_frame), Frame(2, _name_frame), Frame(5, _who_frame),
          Frame(5, _count_frame))
FILLER_TEMPLATES = EVERYDAY + CONVERSATION.body
FRAMES_PER_LINE = (1, 3)  # dense targets: the validation split of a small file holds hundreds
FILLER_SHARE = 0.1  # chance of an everyday sentence between frames, so lines are not all frames


def _filler_sentence(rng: random.Random) -> str:
    hero, friend = rng.sample(CAST, 2)
    return _render_sentence(Scene(rng, "past", hero, friend), rng.choice(FILLER_TEMPLATES))


def _longrange_line(rng: random.Random, min_distance: int,
                    max_distance: int) -> tuple[str, list[tuple[int, str, int, str]]]:
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


def generate_longrange(seed: int, size: int, min_distance: int,
                       max_distance: int) -> tuple[str, list[Target]]:
    """Sentences with long-range dependencies, and the target words to score a model on.

    Each target's distance is drawn uniformly from [min_distance, max_distance]. Stops at
    the end of the first line that brings the text to ``size`` bytes or more.
    """
    if not 1 <= min_distance <= max_distance:
        raise ValueError(f"need 1 <= min_distance <= max_distance, got {min_distance}, "
                         f"{max_distance}")
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
        sub.add_argument("--size", type=int, default=default_size,
                         help="approximate size in bytes (default: %(default)s)")
        sub.add_argument("--out", type=Path, required=True, help="text file to write")
    longrange.add_argument("--min-distance", type=int, default=2,
                           help="fewest words between cue and target (default: %(default)s)")
    longrange.add_argument("--max-distance", type=int, default=30,
                           help="most words between cue and target (default: %(default)s)")
    args = parser.parse_args(argv)

    if args.corpus == "stories":
        _write_text(args.out, generate_stories(args.seed, args.size))
        return
    try:
        text, targets = generate_longrange(args.seed, args.size, args.min_distance,
                                           args.max_distance)
    except ValueError as error:
        parser.error(str(error))
    _write_text(args.out, text)
    write_targets(targets_path(args.out), targets)


if __name__ == "__main__":
    main()
