"""A hand-made catalogue of 36 real films (short descriptions written for the tests) in six clear clusters.

Columns follow db_utils.Movie; ids are slugs. Small enough to embed with the real MiniLM model in
a few seconds, clustered enough that nearest neighbours are predictable (space films sit together).
"""

from __future__ import annotations

import pandas as pd

# (slug, title, year, genres, overview, popularity, vote_average, vote_count)
FILMS: list[tuple[str, str, int, str, str, float, float, int]] = [
    ("star+wars+1977", "Star Wars", 1977, "Adventure|Science Fiction",
     "A farm boy joins rebels and a smuggler to rescue a princess from the Empire's space station.", 90.0, 8.1, 6000),
    ("the+empire+strikes+back+1980", "The Empire Strikes Back", 1980, "Adventure|Science Fiction",
     "The rebels flee across the galaxy while Darth Vader hunts the young Jedi and his friends.", 80.0, 8.2, 5000),
    ("return+of+the+jedi+1983", "Return of the Jedi", 1983, "Adventure|Science Fiction",
     "The rebel fleet attacks a second Death Star as Luke confronts the Emperor and his father.", 70.0, 7.9, 4500),
    ("alien+1979", "Alien", 1979, "Horror|Science Fiction",
     "The crew of a space freighter is stalked by a deadly creature that boarded their ship.", 60.0, 8.0, 4200),
    ("aliens+1986", "Aliens", 1986, "Action|Science Fiction",
     "Marines travel to a space colony overrun by alien creatures, with the sole survivor of the first attack.",
     55.0, 7.9, 3500),
    ("2001+a+space+odyssey+1968", "2001: A Space Odyssey", 1968, "Science Fiction|Mystery",
     "Astronauts on a mission to Jupiter face a rebellious ship computer after a monolith is found on the moon.",
     40.0, 7.9, 3000),
    ("toy+story+1995", "Toy Story", 1995, "Animation|Comedy|Family",
     "A cowboy doll feels threatened when a flashy space ranger toy becomes the boy's new favourite.", 85.0, 7.7, 5200),
    ("toy+story+2+1999", "Toy Story 2", 1999, "Animation|Comedy|Family",
     "The toys set out to rescue the cowboy doll after he is stolen by a greedy toy collector.", 60.0, 7.3, 3000),
    ("finding+nemo+2003", "Finding Nemo", 2003, "Animation|Family",
     "A timid clownfish crosses the ocean to find his son, helped by a forgetful blue fish.", 75.0, 7.6, 4800),
    ("the+lion+king+1994", "The Lion King", 1994, "Animation|Family|Drama",
     "A young lion prince flees after his father's death and must return to reclaim the kingdom from his uncle.",
     78.0, 8.0, 5100),
    ("shrek+2001", "Shrek", 2001, "Animation|Comedy|Family",
     "A grumpy ogre sets out with a talking donkey to rescue a princess so he can get his swamp back.",
     65.0, 7.2, 4000),
    ("monsters+inc+2001", "Monsters, Inc.", 2001, "Animation|Comedy|Family",
     "Two monsters who scare children for energy find a little girl has slipped into their world.", 62.0, 7.5, 3900),
    ("the+godfather+1972", "The Godfather", 1972, "Crime|Drama",
     "The aging head of a mafia family hands control of his criminal empire to his reluctant son.", 88.0, 8.7, 6100),
    ("the+godfather+part+ii+1974", "The Godfather: Part II", 1974, "Crime|Drama",
     "The son expands the family's mafia business while the story of his father's youth in New York unfolds.",
     60.0, 8.6, 3700),
    ("goodfellas+1990", "Goodfellas", 1990, "Crime|Drama",
     "A young man rises through the ranks of a New York mafia crew over three decades of crime.", 58.0, 8.5, 3600),
    ("pulp+fiction+1994", "Pulp Fiction", 1994, "Crime|Thriller",
     "The lives of two hitmen, a boxer and a gangster's wife intertwine in tales of violence in Los Angeles.",
     86.0, 8.5, 6000),
    ("heat+1995", "Heat", 1995, "Crime|Action|Thriller",
     "A detective hunts a crew of professional bank robbers led by a meticulous thief in Los Angeles.",
     50.0, 8.2, 2500),
    ("casino+1995", "Casino", 1995, "Crime|Drama",
     "A gambling expert runs a Las Vegas casino for the mob while his violent friend causes trouble.", 45.0, 8.2, 2300),
    ("titanic+1997", "Titanic", 1997, "Drama|Romance",
     "A poor artist and a rich young woman fall in love aboard the doomed ocean liner on its first voyage.",
     95.0, 7.5, 7000),
    ("the+notebook+2004", "The Notebook", 2004, "Drama|Romance",
     "An old man reads a love story to a woman in a nursing home, the tale of a summer romance in the 1940s.",
     52.0, 7.9, 3000),
    ("pretty+woman+1990", "Pretty Woman", 1990, "Comedy|Romance",
     "A wealthy businessman hires a charming woman to accompany him for a week, and they fall in love.",
     48.0, 7.0, 2500),
    ("notting+hill+1999", "Notting Hill", 1999, "Comedy|Romance|Drama",
     "A London bookshop owner falls in love with a famous American film star who walks into his shop.",
     44.0, 7.1, 2200),
    ("when+harry+met+sally+1989", "When Harry Met Sally...", 1989, "Comedy|Romance",
     "Two friends argue for years over whether men and women can ever be just friends, then fall in love.",
     40.0, 7.4, 1900),
    ("sleepless+in+seattle+1993", "Sleepless in Seattle", 1993, "Comedy|Romance|Drama",
     "A widower's son calls a radio show, and a woman across the country falls in love with his story.",
     38.0, 6.8, 1500),
    ("the+shining+1980", "The Shining", 1980, "Horror|Thriller",
     "A writer becomes the winter caretaker of an isolated hotel and slowly descends into murderous madness.",
     66.0, 8.2, 4300),
    ("halloween+1978", "Halloween", 1978, "Horror|Thriller",
     "A masked killer escapes an asylum and returns to his home town to stalk teenage babysitters.", 42.0, 7.4, 1800),
    ("the+exorcist+1973", "The Exorcist", 1973, "Horror",
     "Two priests try to save a young girl possessed by a demon after a mother seeks help.", 46.0, 7.7, 2400),
    ("a+nightmare+on+elm+street+1984", "A Nightmare on Elm Street", 1984, "Horror",
     "Teenagers are hunted in their dreams by a burned killer with a bladed glove.", 36.0, 7.1, 1600),
    ("scream+1996", "Scream", 1996, "Horror|Mystery",
     "A masked killer who loves horror films terrorises high school students in a small town.", 47.0, 7.1, 2300),
    ("the+texas+chain+saw+massacre+1974", "The Texas Chain Saw Massacre", 1974, "Horror",
     "Friends travelling through rural Texas fall prey to a family of cannibal killers.", 30.0, 6.9, 1200),
    ("the+good+the+bad+and+the+ugly+1966", "The Good, the Bad and the Ugly", 1966, "Western",
     "Three gunslingers compete to find a fortune in Confederate gold buried in a cemetery during the Civil War.",
     50.0, 8.5, 2800),
    ("unforgiven+1992", "Unforgiven", 1992, "Western|Drama",
     "A retired gunslinger takes one last bounty job to kill two cowboys in a violent frontier town.",
     35.0, 7.9, 1700),
    ("once+upon+a+time+in+the+west+1968", "Once Upon a Time in the West", 1968, "Western",
     "A mysterious harmonica-playing gunman helps a widow defend her land from a ruthless hired killer.",
     28.0, 8.4, 1400),
    ("true+grit+1969", "True Grit", 1969, "Western|Adventure",
     "A stubborn girl hires a drunken one-eyed marshal to track her father's killer into Indian territory.",
     22.0, 7.3, 800),
    ("butch+cassidy+and+the+sundance+kid+1969", "Butch Cassidy and the Sundance Kid", 1969, "Western|Crime",
     "Two charming outlaws rob trains across the West and flee to Bolivia when a posse chases them.",
     26.0, 7.5, 1100),
    ("tombstone+1993", "Tombstone", 1993, "Western|Action",
     "Wyatt Earp and his brothers face a gang of outlaw cowboys in a lawless Arizona silver town.", 32.0, 7.5, 1300),
]

CLUSTERS = {
    "space": [f[0] for f in FILMS[0:6]],
    "animation": [f[0] for f in FILMS[6:12]],
    "crime": [f[0] for f in FILMS[12:18]],
    "romance": [f[0] for f in FILMS[18:24]],
    "horror": [f[0] for f in FILMS[24:30]],
    "western": [f[0] for f in FILMS[30:36]],
}


def small_catalog() -> pd.DataFrame:
    """The 36 films as a catalogue DataFrame (db_utils Movie columns)."""
    rows = [
        {
            "id": slug, "title": title, "original_title": title, "year": year, "genres": genres,
            "overview": overview, "description_source": "test", "popularity": popularity,
            "vote_average": vote_average, "vote_count": vote_count,
        }
        for slug, title, year, genres, overview, popularity, vote_average, vote_count in FILMS
    ]
    return pd.DataFrame(rows)
