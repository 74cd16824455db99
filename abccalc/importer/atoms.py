"""Dims of a traced model: tensor axes as products of *atoms*, unified across ops.

Every tensor axis is a group of atoms (a view that merges ``(batch, ctx)`` gives the group
``(batch, ctx)``; ``d_model`` split into ``(n_head, d_head)`` refines the atom into two).
An atom carries its size at each traced width, so it is finite when the sizes agree and
infinite when they grow (TP5 App. B: two widths tell the two apart). Ops that equate axes
(a contraction's summed axes, a residual's operands) unify their atoms (union-find); a
*frozen* atom (the dim a slice cuts, or one of its parts) is never refined, since a slice
names single dims.
"""

from __future__ import annotations

import itertools
import math

Sizes = tuple[int, ...]  # one size per traced width
Group = tuple[int, ...]  # atoms whose product is one tensor axis


def _prod(sizes: list[Sizes], width_count: int) -> Sizes:
    return tuple(math.prod(s[w] for s in sizes) for w in range(width_count))


class Atoms:
    """Union-find over atoms with refinements (an atom = an ordered product of atoms)."""

    def __init__(self, width_count: int) -> None:
        self.n = width_count
        self.sizes: list[Sizes] = []
        self.parent: list[int] = []
        self.refined: dict[int, Group] = {}
        self.frozen: set[int] = set()
        self.batch: set[int] = set()
        self.broadcast: set[int] = set()  # made by expanding a size-1 axis: copies
        self.copy_of: dict[int, int] = {}  # key positions: ctx_k is a copy of ctx
        self.hint: dict[int, str] = {}
        self._copies: dict[int, int] = {}
        self._parts: dict[tuple, tuple[int, ...]] = {}
        self.part_of: dict[int, tuple[int, int]] = {}  # part -> (the cut atom, its index)

    def new(self, sizes: Sizes, hint: str | None = None) -> int:
        a = len(self.sizes)
        self.sizes.append(tuple(sizes))
        self.parent.append(a)
        if hint:
            self.hint[a] = hint
        return a

    def find(self, a: int) -> int:
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def one(self, a: int) -> bool:
        return all(s == 1 for s in self.sizes[a])

    def flat(self, group: Group, keep_ones: bool = False) -> tuple[int, ...]:
        """The group as root atoms, refinements expanded; size-1 atoms dropped unless
        frozen (a slice part such as a CLS token) or ``keep_ones``."""
        out: list[int] = []
        for a in group:
            r = self.find(a)
            if r in self.refined:
                out += self.flat(self.refined[r], keep_ones)
            elif keep_ones or not self.one(r) or r in self.frozen:
                out.append(r)
        return tuple(out)

    def size(self, atoms: tuple[int, ...]) -> Sizes:
        return _prod([self.sizes[a] for a in atoms], self.n)

    def union(self, a: int, b: int) -> bool:
        a, b = self.find(a), self.find(b)
        if a == b:
            return True
        if self.sizes[a] != self.sizes[b]:
            return False
        ra, rb = self.refined.pop(a, None), self.refined.pop(b, None)
        self.parent[b] = a
        for s in (self.frozen, self.batch, self.broadcast):
            if b in s:
                s.add(a)
        if a not in self.hint and b in self.hint:
            self.hint[a] = self.hint[b]
        if ra is not None and rb is not None:
            return self.unify(ra, rb)
        if ra is not None or rb is not None:
            self.refined[a] = ra if ra is not None else rb
        return True

    def refine(self, a: int, parts: tuple[int, ...]) -> bool:
        a = self.find(a)
        if a in self.frozen or a in self.refined or self.size(parts) != self.sizes[a]:
            return False
        if a in self.batch:
            self.batch.update(self.find(p) for p in parts)
        self.refined[a] = parts
        return True

    def unify(self, g1: Group, g2: Group) -> bool:
        """Make two groups the same axis: equal atoms united, an atom that spans several of
        the other side's refined into them. False if they cannot be equal."""
        f1, f2 = list(self.flat(g1)), list(self.flat(g2))
        while f1 and f2:
            a, b = f1.pop(0), f2.pop(0)
            if self.sizes[a] == self.sizes[b]:
                if not self.union(a, b):
                    return False
                continue
            small, big, rest = ([a], b, f1) if self._divides(a, b) else ([b], a, f2)
            while self.size(tuple(small)) != self.sizes[big]:
                if not rest or not self._divides_size(self.size((*small, rest[0])),
                                                      self.sizes[big]):
                    return False
                small.append(rest.pop(0))
            if not self.refine(big, tuple(small)):
                return False
        return not f1 and not f2

    def _divides(self, a: int, b: int) -> bool:
        return self._divides_size(self.sizes[a], self.sizes[b])

    @staticmethod
    def _divides_size(x: Sizes, y: Sizes) -> bool:
        """x divides y at every width."""
        return all(v % u == 0 for u, v in zip(x, y, strict=True))

    def reshape(self, groups: list[Group], shape: list[Sizes]) -> list[Group]:
        """The output groups of a view of an axis list ``groups`` to ``shape``. An atom it
        splits is refined, unless frozen: then the parts are new atoms, and the node pass
        reaches them through a ``reshape`` node."""
        atoms = list(self.flat(tuple(a for g in groups for a in g)))
        out: list[Group] = []
        for s in shape:
            if all(v == 1 for v in s):
                out.append(())
                continue
            acc: list[int] = []
            while self.size(tuple(acc)) != s:
                if not atoms:
                    raise ValueError("view does not match its input's axes")
                a = atoms.pop(0)
                have = self.size(tuple(acc))
                if self._divides_size(self.size((*acc, a)), s):
                    acc.append(a)
                    continue
                need = tuple(x // h for x, h in zip(s, have, strict=True))
                rest = tuple(x // n for x, n in zip(self.sizes[a], need, strict=True))
                if self.size((a,)) != _prod([need, rest], self.n):
                    raise ValueError("view does not match its input's axes")
                head, tail = self.new(need), self.new(rest)
                self.refine(a, (head, tail))
                acc.append(head)
                atoms.insert(0, tail)
            out.append(tuple(acc))
        if atoms:
            raise ValueError("view does not match its input's axes")
        return out

    def key_copy(self, a: int) -> int:
        """The key positions' atom of sequence atom ``a`` (one per atom)."""
        a = self.find(a)
        if a not in self._copies:
            c = self.new(self.sizes[a])
            self.copy_of[c] = a
            self._copies[a] = c
        return self._copies[a]

    def parts(self, a: int, cuts: tuple[Sizes, ...]) -> tuple[int, ...]:
        """The parts atom ``a`` is cut into at ``cuts`` (offsets per width), memoized, so
        ``x[..., :h]`` and ``x[..., h:]`` name the same two parts; both frozen."""
        a = self.find(a)
        key = (a, cuts)
        if key not in self._parts:
            bounds = [tuple(0 for _ in range(self.n)), *cuts, self.sizes[a]]
            parts = tuple(self.new(tuple(e - s for s, e in zip(lo, hi, strict=True)))
                          for lo, hi in itertools.pairwise(bounds))
            self.frozen.add(a)
            self.frozen.update(parts)
            self.part_of.update({p: (a, j) for j, p in enumerate(parts)})
            self._parts[key] = parts
        return self._parts[key]
