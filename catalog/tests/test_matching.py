from catalog.matching import TitleYearIndex, display_title, title_keys


def test_trailing_articles_move_to_the_front():
    assert display_title("Usual Suspects, The") == "The Usual Suspects"
    assert display_title(
        "City of Lost Children, The (Cité des enfants perdus, La)"
    ) == ("The City of Lost Children (Cité des enfants perdus, La)")
    assert display_title("Heat") == "Heat"


def test_keys_fold_case_accents_punctuation_and_alternate_titles():
    assert title_keys("Amélie (Fabuleux destin d'Amélie Poulain, Le)")[-1] == "amelie"
    assert title_keys("Se7en") == ["se7en"]
    assert "matrix" in title_keys("Matrix, The")
    assert title_keys("Face/Off")[0] == title_keys("Face Off")[0]


def test_index_matches_exact_year_then_one_year_off():
    index = TitleYearIndex.build([(1, "Usual Suspects, The", 1995), (2, "Heat", 1995)])
    assert index.find("The Usual Suspects", 1995) == 1
    assert index.find("The Usual Suspects", 1996) == 1  # festival vs release year
    assert index.find("Heat", 2013) is None  # a remake is another film
    assert index.find("Unknown", 1995) is None


def test_index_refuses_to_guess_between_namesakes():
    index = TitleYearIndex.build([(1, "Hamlet", 1996), (2, "Hamlet", 1996)])
    assert index.find("Hamlet", 1996) is None
    index = TitleYearIndex.build([(1, "Hamlet", 1995), (2, "Hamlet", 1997)])
    assert index.find("Hamlet", 1996) is None
