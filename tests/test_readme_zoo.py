"""The README's zoo table is checked against the method cards, so the two cannot drift.

The table ("## The zoo": seed row → families) is prose for people; the truth is each family's
`card.category`. A row label maps to a category by the rule the table uses: the words before
" (", with "both, outer X" written `both-outer-X`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scalebench.api import SEED_CATEGORIES
from scalebench.generators import GENERATORS
from scalebench.methods import FAMILIES

ROOT = Path(__file__).resolve().parents[1]


def row_category(label: str) -> str:
    """'refinement (K)' → 'refinement'; 'both, outer S' → 'both-outer-S'."""
    return label.split(" (", 1)[0].strip().replace(", outer ", "-outer-")


def zoo_table(readme: str) -> dict[str, list[str]]:
    """Seed category → the families its README row lists (the backticked names, in order)."""
    section = readme.split("\n## The zoo\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")][2:]  # past header and rule
    table: dict[str, list[str]] = {}
    for line in rows:
        label, families = (cell.strip() for cell in line.strip("|").split("|"))
        table[row_category(label)] = re.findall(r"`([^`]+)`", families)
    return table


def test_row_labels_map_to_the_seed_categories() -> None:
    assert row_category("neither (S, K fixed)") == "neither"
    assert row_category("both, outer K") == "both-outer-K"
    table = zoo_table((ROOT / "README.md").read_text(encoding="utf-8"))
    assert list(table) == list(SEED_CATEGORIES)  # every row once, in the seed's order


def disagreements(table: dict[str, list[str]]) -> list[str]:
    """Each way the table and the cards disagree, as one line; [] when they agree."""
    listed = [family for families in table.values() for family in families]
    problems = [f"README lists {family} {listed.count(family)} times" for family in sorted(set(listed))
                if listed.count(family) > 1]
    problems += [f"README zoo table lacks {f.id}" for f in FAMILIES if f.id not in listed]
    for category, families in table.items():
        for family in families:
            if family not in GENERATORS:
                problems.append(f"README lists {family}, which is no family")
            elif (card := GENERATORS.get(family).card).category != category:
                problems.append(f"README lists {family} under {category!r}; its card says {card.category!r}")
    return problems


def test_readme_zoo_table_lists_every_family_in_its_cards_row() -> None:
    assert disagreements(zoo_table((ROOT / "README.md").read_text(encoding="utf-8"))) == []


@pytest.mark.parametrize("family", [f.id for f in FAMILIES])
def test_every_family_in_the_table_has_its_method_doc(family: str) -> None:
    """The table's intro promises `docs/methods/<id>.md` for each family."""
    assert (ROOT / "docs" / "methods" / f"{family}.md").is_file()


def test_a_family_in_the_wrong_row_is_caught() -> None:
    readme = "intro\n## The zoo\n\n| seed row | families |\n|---|---|\n| sequence (S) | `diffusion`, `nope` |\n\n## Next\n"
    problems = disagreements(zoo_table(readme))
    assert "README lists diffusion under 'sequence'; its card says 'refinement'" in problems
    assert "README lists nope, which is no family" in problems and "README zoo table lacks gpt" in problems
