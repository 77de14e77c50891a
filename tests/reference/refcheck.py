# SPDX-License-Identifier: Apache-2.0
"""refcheck.py - what the strategy references share: the error a check
raises, and the report of the first element outside its tolerance (its
value, the expected one, the error, the tolerance and how many are off),
so every reference names a mismatch the same way."""

import numpy as np


class Mismatch(Exception):
    """The merged output disagrees with the reference."""


def flat_like(x, want):
    """x as one flat array of want's size: already that many elements (of
    any shape), or broadcast to want's shape."""
    if np.size(x) != np.size(want):
        x = np.broadcast_to(x, np.shape(want))
    return np.reshape(x, -1)


def first_bad(name, got, want, err, tol, bad=None):
    """Raise Mismatch for the first element of tensor `name` where `bad`
    is set; by default where `err` is not within `tol` (a NaN error is
    outside). Returns quietly when none is."""
    err, tol = flat_like(err, want), flat_like(tol, want)
    bad = ~(err <= tol) if bad is None else flat_like(bad, want)
    where = np.flatnonzero(bad)
    if where.size == 0:
        return
    i = int(where[0])
    raise Mismatch("%s: element %d is %r, expected %r (error %.3g, tolerance "
                   "%.3g; %d elements off)" % (
                       name, i, float(np.reshape(got, -1)[i]),
                       float(np.reshape(want, -1)[i]), float(err[i]),
                       float(tol[i]), where.size))
