"""Invariants of the importer's axis bookkeeping (abccalc/importer/atoms.py): views merge
and split atoms without losing or inventing coordinates, and unify equates axes."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from abccalc.importer.atoms import Atoms

# an atom: its base size and whether it doubles at the second width (infinite)
ATOM = st.tuples(st.integers(1, 6), st.booleans())


def sizes(base: int, infinite: bool) -> tuple[int, int]:
    return (base, 2 * base if infinite else base)


@settings(max_examples=60, deadline=None)
@given(st.lists(ATOM, min_size=1, max_size=5), st.data())
def test_merge_then_split_gives_back_the_atoms(spec, data):
    """A view merging runs of axes keeps their atoms as groups; viewing back to the
    original shape gives each axis its own atom again."""
    atoms = Atoms(2)
    axes = [atoms.new(sizes(*s)) for s in spec]
    cuts = sorted(data.draw(st.sets(st.integers(1, len(axes) - 1))) if len(axes) > 1 else [])
    runs = [axes[a:b] for a, b in zip([0, *cuts], [*cuts, len(axes)], strict=True)]
    merged_shape = [tuple(math.prod(atoms.sizes[x][w] for x in run) for w in range(2))
                    for run in runs]
    merged = atoms.reshape([(a,) for a in axes], merged_shape)
    flat = atoms.flat(tuple(a for g in merged for a in g))
    assert list(flat) == [atoms.find(a) for a in axes if not atoms.one(a)]
    back = atoms.reshape(merged, [atoms.sizes[a] for a in axes])
    for a, g in zip(axes, back, strict=True):
        assert atoms.size(atoms.flat(g)) == atoms.sizes[a]
        if not atoms.one(a):
            assert atoms.flat(g) == (atoms.find(a),)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 8), st.integers(2, 8), st.booleans())
def test_split_refines_the_atom(heads, head, infinite):
    """d = heads·head viewed as (heads, head) refines d's atom into the two parts, so a
    tensor still holding d now reads as the two (a linear's out dims [n_head, d_head])."""
    atoms = Atoms(2)
    d = atoms.new((heads * head, heads * head * (2 if infinite else 1)))
    out = atoms.reshape([(d,)], [(heads, heads), (head, head * (2 if infinite else 1))])
    parts = atoms.flat((d,))
    assert atoms.size(parts) == atoms.sizes[d]
    assert [a for g in out for a in atoms.flat(g)] == list(parts)


@settings(max_examples=60, deadline=None)
@given(st.lists(ATOM, min_size=1, max_size=4))
def test_unify_equates_or_refines(spec):
    """Unifying a merged axis (a·b·…) with one fresh atom of its size refines the fresh atom
    into the same atoms: afterwards both read as the same atoms."""
    atoms = Atoms(2)
    parts = tuple(atoms.new(sizes(*s)) for s in spec)
    whole = atoms.new(atoms.size(parts))
    assert atoms.unify((whole,), parts)
    assert atoms.flat((whole,)) == atoms.flat(parts)
