"""Exact path-dependent TreeSHAP for LightGBM models, faster than ``pred_contrib``.

One module of some 630 lines on purpose: it is one algorithm, whose parts (reading the model text
into flat arrays, precomputing the leaf tables, the numba kernels that walk them, the explainer)
share one array layout (:class:`ShapArrays`) and its invariants, which a split would spread apart.

Same numbers as ``booster.predict(x, pred_contrib=True)`` (to rounding, ~1e-15): per-feature
contributions in the raw (log-odds) scale, the expected value in the last column.

How (FastTreeSHAP "v2"-style precomputation, Yang 2021): for a leaf ``l`` with value ``v`` whose
root path tests the unique features ``P`` (``d = |P|``), LightGBM's TreeSHAP is the Shapley value
of ``v_l(S) = v * prod_{k in S} a_k(x) * prod_{k in P minus S} r_k``, where ``a_k(x)`` is 1 when
``x`` satisfies every test of the path on feature ``k`` (else 0) and ``r_k`` is the product of the
path's cover ratios ``child_count / parent_count`` on feature ``k``. As ``a`` is 0/1, the leaf's
Shapley values depend on ``x`` only through the mask ``M = {k : a_k(x) = 1}``:

    phi_k(M) = v * (1[k in M] - r_k) * sum_{S subset of M - {k}} |S|! (d-|S|-1)! / d! * prod_{j in P-S-{k}} r_j

so ``table[leaf][M][k]`` (``2^d x d`` numbers per leaf) is computed once per model, and explaining
a row is: evaluate each split once, propagate the masks down the tree, add one ``d``-vector per
leaf. As tables grow as ``2^d d``, leaves with more than ``max_table_depth`` unique features (only
in deep unconstrained trees; ours have ``d <= 6``) skip the table and get the same values from an
``O(d^2)`` polynomial formula per row (``_direct_phi``); the depth also drops until the tables fit
in ``max_table_bytes``. The expected value is the sum over trees of LightGBM's ``Tree::ExpectedValue`` (cover
weighted mean of the leaf values; the first tree's leaves carry the ``boost_from_average`` init
score, so it ends up here too; a Dataset ``init_score`` is not part of the model and not here).

Split decisions replicate LightGBM exactly: the C API turns ``|x| <= kZeroThreshold`` (the float
``1e-35f`` widened to double) into 0; then ``NumericalDecision``: NaN becomes 0 unless the split's
missing type is NaN; missing (Zero type and ``|x| <= kZeroThreshold``, or NaN type and NaN) goes to
the default child; otherwise ``x <= threshold`` (double) goes left.

The model is read from LightGBM's text format (``model_to_string``), not from ``dump_model()``,
whose JSON clamps thresholds to +-1e300 although LightGBM 4.7 does make ``threshold=inf`` splits.

Refused (``ValueError``; fall back to ``pred_contrib``): categorical splits, linear trees,
multiclass / several trees per iteration, random-forest averaging, zero-count nodes, paths with more
than 30 unique features.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numba
import numpy as np
from numba import njit, prange

KZERO = float(np.float32(1e-35))  # LightGBM: const double kZeroThreshold = 1e-35f;
MISSING_NONE, MISSING_ZERO, MISSING_NAN = 0, 1, 2
DEFAULT_MAX_TABLE_BYTES = 256 * 2**20
DEFAULT_MAX_TABLE_DEPTH = 10  # a leaf with more unique path features is computed on the fly (2^10 * 10 * 8 = 80 KiB)
MAX_PATH_FEATURES = 30  # masks are int32
SERIAL_MAX_ROWS = 16  # up to this many rows: row by row on the calling thread (latency path)
BLOCK = 256  # rows per block in batches: the block's x, output and masks and one tree's tables stay in L2
MIN_BLOCK = 16
_parallel_lock = threading.Lock()


# ---------------------------------------------------------------------------------------------
# arrays
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ShapArrays:
    """A model flattened for the kernels.

    Internal nodes of tree ``t`` are ``tree_node_start[t]:tree_node_start[t+1]``, in preorder
    (parent before children); a child ``c < ni`` (the tree's internal-node count) is local internal
    node ``c``, else local leaf ``c - ni``. ``node_bit`` is the bit of the node's feature in the masks
    of the leaves below it (slot = order of first appearance on the root path). LightGBM's
    missing-value rules reduce to two flags per split: where NaN goes (missing type NaN or Zero: the
    default child; None: where 0 goes) and where ``|x| <= kZeroThreshold`` goes (Zero: the default
    child; else where 0 goes). Leaf ``g`` has ``leaf_d[g]`` unique path features
    ``leaf_features[leaf_feat_start[g]:leaf_feat_start[g+1]]`` (by slot) and its table
    ``table[leaf_table_start[g]:][:2^d * d]`` indexed ``[mask * d + slot]``, or, for leaves with
    more unique features than the table depth (``leaf_table_start[g] == -1``), the same numbers
    computed per row from ``leaf_value``, ``leaf_r`` and ``weights`` (``_direct_phi``).
    """

    num_features: int
    expected_value: float
    table_depth: int  # leaves with at most this many unique path features have a table
    tree_node_start: np.ndarray  # int64 (T+1)
    node_feature: np.ndarray  # int32
    node_threshold: np.ndarray  # float64
    node_nan_left: np.ndarray  # uint8: where x = NaN goes (1 left)
    node_zero_left: np.ndarray  # uint8: where |x| <= kZeroThreshold goes (1 left)
    node_left: np.ndarray  # int32 child
    node_right: np.ndarray  # int32 child
    node_bit: np.ndarray  # int32
    tree_leaf_start: np.ndarray  # int64 (T+1)
    leaf_d: np.ndarray  # int32
    leaf_feat_start: np.ndarray  # int64 (L+1)
    leaf_features: np.ndarray  # int32
    leaf_table_start: np.ndarray  # int64 (L); -1: no table, computed on the fly
    table: np.ndarray  # float64
    leaf_value: np.ndarray  # float64 (L)
    leaf_r: np.ndarray  # float64, aligned with leaf_features: the path's cover ratio per feature
    weights: np.ndarray  # float64 (max_d + 1, max_d): s! (d-s-1)! / d!

    @property
    def num_trees(self) -> int:
        return len(self.tree_node_start) - 1

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, f.name).nbytes for f in fields(self) if isinstance(getattr(self, f.name), np.ndarray))

    def save(self, path: str | Path) -> None:
        """``.npz`` next to the booster, so that a server can skip the build (it is cheap anyway)."""
        arrays = {f.name: getattr(self, f.name) for f in fields(self) if isinstance(getattr(self, f.name), np.ndarray)}
        np.savez(path, num_features=np.int64(self.num_features), expected_value=np.float64(self.expected_value),
                 table_depth=np.int64(self.table_depth), **arrays)

    @classmethod
    def load(cls, path: str | Path) -> ShapArrays:
        with np.load(path) as z:
            kw: dict[str, Any] = {f.name: z[f.name] for f in fields(cls)}
        kw["num_features"] = int(kw["num_features"])
        kw["expected_value"] = float(kw["expected_value"])
        kw["table_depth"] = int(kw["table_depth"])
        return cls(**kw)


def _shapley_weights(max_d: int) -> np.ndarray:
    """``w[d, s] = s! (d-s-1)! / d!`` for ``0 <= s < d <= max_d``."""
    w = np.zeros((max_d + 1, max(max_d, 1)), dtype=np.float64)
    for d in range(1, max_d + 1):
        for s in range(d):
            w[d, s] = math.factorial(s) * math.factorial(d - s - 1) / math.factorial(d)
    return w


@njit(cache=True, nogil=True)
def _fill_tables(leaf_value, leaf_d, leaf_feat_start, leaf_r, leaf_table_start, weights, table):  # pragma: no cover
    n_leaves = leaf_d.shape[0]
    for g in range(n_leaves):
        d = leaf_d[g]
        if d == 0 or leaf_table_start[g] < 0:
            continue
        v = leaf_value[g]
        r = leaf_r[leaf_feat_start[g]:leaf_feat_start[g] + d]
        off = leaf_table_start[g]
        n = 1 << d
        f = np.empty(n, dtype=np.float64)
        for k in range(d):
            kb = 1 << k
            # f[S] = w(|S|) * prod_{j not in S, j != k} r_j   for S without k
            for s in range(n):
                if s & kb:
                    f[s] = 0.0
                    continue
                p = 1.0
                c = 0
                for j in range(d):
                    if j == k:
                        continue
                    if (s >> j) & 1:
                        c += 1
                    else:
                        p *= r[j]
                f[s] = weights[d, c] * p
            # subset sums: f[T] = sum_{S subset of T} w(|S|) prod_{j in P-S-{k}} r_j
            for j in range(d):
                if j == k:
                    continue
                jb = 1 << j
                for s in range(n):
                    if s & jb:
                        f[s] += f[s ^ jb]
            for m in range(n):
                a = 1.0 if m & kb else 0.0
                table[off + m * d + k] = v * (a - r[k]) * f[m & ~kb]


def _parse_model_text(text: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """LightGBM's text format: header ``key=value`` lines, then one block per tree (``Tree=i``)
    up to ``end of trees``. Bare header flags (``average_output``) map to ``""``."""
    header: dict[str, str] = {}
    trees: list[dict[str, str]] = []
    current = header
    for line in text.splitlines():
        if line.startswith("Tree="):
            current = {}
            trees.append(current)
        elif line.startswith("end of trees"):
            break
        elif line:
            key, _, value = line.partition("=")
            current[key] = value
    return header, trees


def _ints(value: str) -> list[int]:
    return [int(v) for v in value.split()]


def _floats(value: str) -> list[float]:
    return [float(v) for v in value.split()]  # "inf" and "-inf" included


def _count(child: int, internal_count: list[int], leaf_count: list[int]) -> int:
    """The data count of a LightGBM child code: an internal node (>= 0) or a leaf (~index)."""
    return internal_count[child] if child >= 0 else leaf_count[~child]


def build_arrays(model_text: str, *, max_table_bytes: int = DEFAULT_MAX_TABLE_BYTES,
                 max_table_depth: int | None = None) -> ShapArrays:
    """Flatten a model in LightGBM's text format (``booster.model_to_string(...)``, already cut to
    the iterations to explain). Leaves with more than ``max_table_depth`` (default
    ``DEFAULT_MAX_TABLE_DEPTH``) unique path features get no table; the depth is lowered further
    until the tables fit in ``max_table_bytes``.

    Not ``dump_model()``: its JSON clamps thresholds to +-1e300 (``AvoidInf``), while LightGBM 4.7
    does split at ``threshold=inf`` (all finite values left, NaN right), so values >= 1e300 would
    take the wrong branch."""
    header, trees = _parse_model_text(model_text)
    if "max_feature_idx" not in header:
        raise ValueError("fast TreeSHAP: not a LightGBM model text")
    if int(header.get("num_tree_per_iteration", "1")) != 1 or int(header.get("num_class", "1")) != 1:
        raise ValueError("fast TreeSHAP: multiclass models (several trees per iteration) are not supported")
    if "average_output" in header:
        raise ValueError("fast TreeSHAP: random-forest (average_output) models are not supported")
    num_features = int(header["max_feature_idx"]) + 1

    tree_node_start, tree_leaf_start = [0], [0]
    n_feature: list[int] = []
    n_threshold: list[float] = []
    n_nan_left: list[int] = []
    n_zero_left: list[int] = []
    n_left: list[int] = []
    n_right: list[int] = []
    n_bit: list[int] = []
    l_value: list[float] = []
    l_d: list[int] = []
    l_feat_start = [0]
    l_features: list[int] = []
    l_r: list[float] = []
    expected_value = 0.0

    for t, tree in enumerate(trees):
        if int(tree.get("is_linear", "0")):
            raise ValueError(f"fast TreeSHAP: tree {t} is a linear tree")
        num_leaves = int(tree["num_leaves"])
        leaf_value = _floats(tree["leaf_value"])
        if num_leaves == 1:  # pred_contrib adds a one-leaf tree's value to the base only
            expected_value += leaf_value[0]
            tree_node_start.append(len(n_feature))
            tree_leaf_start.append(len(l_value))
            continue
        decision_type = _ints(tree["decision_type"])
        if int(tree.get("num_cat", "0")) or any(dt & 1 for dt in decision_type):
            raise ValueError(f"fast TreeSHAP: tree {t} has categorical splits")
        split_feature = _ints(tree["split_feature"])
        threshold = _floats(tree["threshold"])
        left_child = _ints(tree["left_child"])
        right_child = _ints(tree["right_child"])
        leaf_count = _ints(tree["leaf_count"])
        internal_count = _ints(tree["internal_count"])
        if min(internal_count) <= 0 or min(leaf_count) <= 0:  # pred_contrib divides by them (NaN)
            raise ValueError(f"fast TreeSHAP: tree {t} has a node with zero count")

        node_base, leaf_base = len(n_feature), len(l_value)
        ni = num_leaves - 1
        # preorder walk; stack items: (LightGBM child code, our parent, side, path features, path ratios)
        stack: list[tuple[int, int, int, tuple[int, ...], tuple[float, ...]]] = [(0, -1, 0, (), ())]
        while stack:
            node, parent, side, path_f, path_r = stack.pop()
            if node < 0:
                code = ni + len(l_value) - leaf_base
                l_value.append(leaf_value[~node])
                l_d.append(len(path_f))
                l_features.extend(path_f)
                l_r.extend(path_r)
                l_feat_start.append(len(l_features))
            else:
                code = len(n_feature) - node_base
                feature = split_feature[node]
                slot = path_f.index(feature) if feature in path_f else len(path_f)
                if slot >= MAX_PATH_FEATURES:
                    raise ValueError(f"fast TreeSHAP: tree {t} has a path with more than {MAX_PATH_FEATURES} features")
                thr = threshold[node]
                missing = (decision_type[node] >> 2) & 3
                default_left = bool(decision_type[node] & 2)
                zero_left = thr >= 0.0
                n_feature.append(feature)
                n_threshold.append(thr)
                n_nan_left.append(int(zero_left if missing == MISSING_NONE else default_left))
                n_zero_left.append(int(default_left if missing == MISSING_ZERO else zero_left))
                n_left.append(-1)
                n_right.append(-1)
                n_bit.append(1 << slot)
                children = []
                for child_side, child in ((0, left_child[node]), (1, right_child[node])):
                    # LightGBM: data_count(child) / w
                    ratio = _count(child, internal_count, leaf_count) / float(internal_count[node])
                    if slot < len(path_f):  # the feature again: LightGBM unwinds it and multiplies
                        r = list(path_r)
                        r[slot] = ratio * r[slot]
                        children.append((child, code, child_side, path_f, tuple(r)))
                    else:
                        children.append((child, code, child_side, (*path_f, feature), (*path_r, ratio)))
                stack.extend(reversed(children))  # left first
            if parent >= 0:
                (n_left if side == 0 else n_right)[node_base + parent] = code
        tree_node_start.append(len(n_feature))
        tree_leaf_start.append(len(l_value))
        total_count = float(internal_count[0])  # Tree::ExpectedValue, leaves in index order
        ev = 0.0
        for i in range(num_leaves):
            ev += (leaf_count[i] / total_count) * leaf_value[i]
        expected_value += ev

    leaf_d = np.asarray(l_d, dtype=np.int32)
    sizes = np.where(leaf_d > 0, np.left_shift(np.int64(1), leaf_d.astype(np.int64)) * leaf_d, 0).astype(np.int64)
    max_d = int(leaf_d.max()) if len(l_d) else 0
    depth = min(max_d, DEFAULT_MAX_TABLE_DEPTH if max_table_depth is None else max_table_depth)
    while depth > 0 and int(sizes[leaf_d <= depth].sum()) * 8 > max_table_bytes:
        depth -= 1  # the memory budget decides: deeper leaves are computed on the fly
    sizes[leaf_d > depth] = 0
    leaf_table_start = np.zeros(len(l_d), dtype=np.int64)
    if len(l_d):
        leaf_table_start[1:] = np.cumsum(sizes)[:-1]
    leaf_table_start[leaf_d > depth] = -1
    table = np.zeros(int(sizes.sum()), dtype=np.float64)
    leaf_feat_start = np.asarray(l_feat_start, dtype=np.int64)
    leaf_value = np.asarray(l_value, dtype=np.float64)
    leaf_r = np.asarray(l_r, dtype=np.float64)
    weights = _shapley_weights(max_d)
    _fill_tables(leaf_value, leaf_d, leaf_feat_start, leaf_r, leaf_table_start, weights, table)
    return ShapArrays(
        num_features=num_features, expected_value=float(expected_value), table_depth=depth,
        tree_node_start=np.asarray(tree_node_start, dtype=np.int64),
        node_feature=np.asarray(n_feature, dtype=np.int32),
        node_threshold=np.asarray(n_threshold, dtype=np.float64),
        node_nan_left=np.asarray(n_nan_left, dtype=np.uint8),
        node_zero_left=np.asarray(n_zero_left, dtype=np.uint8),
        node_left=np.asarray(n_left, dtype=np.int32), node_right=np.asarray(n_right, dtype=np.int32),
        node_bit=np.asarray(n_bit, dtype=np.int32),
        tree_leaf_start=np.asarray(tree_leaf_start, dtype=np.int64),
        leaf_d=leaf_d, leaf_feat_start=leaf_feat_start, leaf_features=np.asarray(l_features, dtype=np.int32),
        leaf_table_start=leaf_table_start, table=table, leaf_value=leaf_value, leaf_r=leaf_r, weights=weights,
    )


# ---------------------------------------------------------------------------------------------
# kernels
# ---------------------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _direct_phi(mask, d, v, leaf_r, fo, w, c, q, phi):  # pragma: no cover
    """One leaf's Shapley values without its table, ``O(d^2)``: with ``M`` the satisfied features,
    ``c`` the coefficients of ``prod_{j in M} (r_j + t)`` and ``pz = prod_{j not in M} r_j``,
    ``phi_k = -v pz sum_s w(s) c_s`` for ``k`` not in ``M``, and for ``k`` in ``M`` the same with
    ``(1 - r_k)`` and ``c`` divided by ``(r_k + t)`` (stable: ``r_k <= 1``)."""
    c[0] = 1.0
    m = 0
    pz = 1.0
    for j in range(d):
        rj = leaf_r[fo + j]
        if (mask >> j) & 1:
            c[m + 1] = c[m]
            for s in range(m, 0, -1):
                c[s] = rj * c[s] + c[s - 1]
            c[0] = rj * c[0]
            m += 1
        else:
            pz *= rj
    unsatisfied = 0.0
    if m < d:
        total = 0.0
        for s in range(m + 1):
            total += w[s] * c[s]
        unsatisfied = -v * pz * total
    for j in range(d):
        if (mask >> j) & 1:
            rk = leaf_r[fo + j]
            q[m - 1] = c[m]
            for s in range(m - 1, 0, -1):
                q[s - 1] = c[s] - rk * q[s]
            total = 0.0
            for s in range(m):
                total += w[s] * q[s]
            phi[j] = v * (1.0 - rk) * pz * total
        else:
            phi[j] = unsatisfied


@njit(cache=True, nogil=True)
def _rows(x, out, tree_node_start, node_feature, node_threshold, node_nan_left, node_zero_left, node_left,
          node_right, node_bit, tree_leaf_start, leaf_d, leaf_feat_start, leaf_features, leaf_table_start, table,
          leaf_value, leaf_r, weights, max_nodes):  # pragma: no cover
    """Row by row (a few rows: the single-row latency path)."""
    mask = np.empty(max(max_nodes, 1), dtype=np.int32)
    k = weights.shape[0] + 1
    c = np.empty(k)
    q = np.empty(k)
    phi = np.empty(k)
    n_trees = tree_node_start.shape[0] - 1
    for row in range(x.shape[0]):
        xr = x[row]
        o = out[row]
        for t in range(n_trees):
            ns = tree_node_start[t]
            ni = tree_node_start[t + 1] - ns
            if ni == 0:
                continue
            mask[0] = -1
            for i in range(ni):
                g = ns + i
                xv = xr[node_feature[g]]
                go = xv <= node_threshold[g]
                if -KZERO <= xv <= KZERO:
                    go = node_zero_left[g] != 0
                if xv != xv:
                    go = node_nan_left[g] != 0
                m = mask[i]
                cleared = m & ~node_bit[g]
                mask[node_left[g]] = m if go else cleared
                mask[node_right[g]] = cleared if go else m
            ls = tree_leaf_start[t]
            for li in range(tree_leaf_start[t + 1] - ls):
                gl = ls + li
                d = leaf_d[gl]
                lm = mask[ni + li] & ((np.int32(1) << d) - 1)
                fo = leaf_feat_start[gl]
                off = leaf_table_start[gl]
                if off >= 0:
                    base = off + lm * d
                    for j in range(d):
                        o[leaf_features[fo + j]] += table[base + j]
                else:
                    _direct_phi(lm, d, leaf_value[gl], leaf_r, fo, weights[d], c, q, phi)
                    for j in range(d):
                        o[leaf_features[fo + j]] += phi[j]


@njit(cache=True, nogil=True)
def _block(x, out, r0, r1, xt, ot, masks, tree_node_start, node_feature, node_threshold, node_nan_left,
           node_zero_left, node_left, node_right, node_bit, tree_leaf_start, leaf_d, leaf_feat_start, leaf_features,
           leaf_table_start, table, leaf_value, leaf_r, weights):  # pragma: no cover
    """Rows ``r0:r1`` transposed (feature-major) so that each split and each leaf runs one
    branch-free loop over the block's rows; trees outer, so one tree's tables stay in cache."""
    n_features = x.shape[1]
    nb = r1 - r0
    for f in range(n_features):
        xf = xt[f]
        for r in range(nb):
            xf[r] = x[r0 + r, f]
    ot[:, :nb] = 0.0
    k = weights.shape[0] + 1
    c = np.empty(k)
    q = np.empty(k)
    phi = np.empty(k)
    n_trees = tree_node_start.shape[0] - 1
    for t in range(n_trees):
        ns = tree_node_start[t]
        ni = tree_node_start[t + 1] - ns
        if ni == 0:
            continue
        m0 = masks[0]
        for r in range(nb):
            m0[r] = -1
        for i in range(ni):
            g = ns + i
            xf = xt[node_feature[g]]
            thr = node_threshold[g]
            nan_left = node_nan_left[g] != 0
            zero_left = node_zero_left[g] != 0
            bit = node_bit[g]
            mi = masks[i]
            ml = masks[node_left[g]]
            mr = masks[node_right[g]]
            for r in range(nb):
                xv = xf[r]
                go = xv <= thr
                if -KZERO <= xv <= KZERO:
                    go = zero_left
                if xv != xv:
                    go = nan_left
                m = mi[r]
                cleared = m & ~bit
                ml[r] = m if go else cleared
                mr[r] = cleared if go else m
        ls = tree_leaf_start[t]
        for li in range(tree_leaf_start[t + 1] - ls):
            gl = ls + li
            d = leaf_d[gl]
            low = (np.int32(1) << d) - 1
            off = leaf_table_start[gl]
            fo = leaf_feat_start[gl]
            lm = masks[ni + li]
            if off >= 0:
                for j in range(d):
                    o = ot[leaf_features[fo + j]]
                    for r in range(nb):
                        o[r] += table[off + (lm[r] & low) * d + j]
            else:
                for r in range(nb):
                    _direct_phi(lm[r] & low, d, leaf_value[gl], leaf_r, fo, weights[d], c, q, phi)
                    for j in range(d):
                        ot[leaf_features[fo + j], r] += phi[j]
    for r in range(nb):
        for f in range(n_features):
            out[r0 + r, f] = ot[f, r]


@njit(cache=True, nogil=True)
def _blocks_serial(x, out, block, tree_node_start, node_feature, node_threshold, node_nan_left, node_zero_left,
                   node_left, node_right, node_bit, tree_leaf_start, leaf_d, leaf_feat_start, leaf_features,
                   leaf_table_start, table, leaf_value, leaf_r, weights, max_nodes):  # pragma: no cover
    n, n_features = x.shape
    xt = np.empty((n_features, block))
    ot = np.empty((n_features, block))
    masks = np.empty((max(max_nodes, 1), block), dtype=np.int32)
    for r0 in range(0, n, block):
        _block(x, out, r0, min(r0 + block, n), xt, ot, masks, tree_node_start, node_feature, node_threshold,
               node_nan_left, node_zero_left, node_left, node_right, node_bit, tree_leaf_start, leaf_d,
               leaf_feat_start, leaf_features, leaf_table_start, table, leaf_value, leaf_r, weights)


@njit(cache=True, nogil=True, parallel=True)
def _blocks_parallel(x, out, block, tree_node_start, node_feature, node_threshold, node_nan_left, node_zero_left,
                     node_left, node_right, node_bit, tree_leaf_start, leaf_d, leaf_feat_start, leaf_features,
                     leaf_table_start, table, leaf_value, leaf_r, weights, max_nodes):  # pragma: no cover
    n, n_features = x.shape
    n_blocks = (n + block - 1) // block
    for b in prange(n_blocks):
        r0 = b * block
        xt = np.empty((n_features, block))
        ot = np.empty((n_features, block))
        masks = np.empty((max(max_nodes, 1), block), dtype=np.int32)
        _block(x, out, r0, min(r0 + block, n), xt, ot, masks, tree_node_start, node_feature, node_threshold,
               node_nan_left, node_zero_left, node_left, node_right, node_bit, tree_leaf_start, leaf_d,
               leaf_feat_start, leaf_features, leaf_table_start, table, leaf_value, leaf_r, weights)


# ---------------------------------------------------------------------------------------------
# API
# ---------------------------------------------------------------------------------------------
class FastTreeShap:
    """Exact TreeSHAP with LightGBM's ``pred_contrib`` layout: ``(n, num_features + 1)`` float64,
    expected value in the last column.

        explainer = FastTreeShap.from_booster(booster)   # once, at model load
        phi = explainer.contributions(x)                  # == booster.predict(x, pred_contrib=True)
    """

    def __init__(self, arrays: ShapArrays):
        self.arrays = arrays
        a = arrays
        max_nodes = int((np.diff(a.tree_node_start) + np.diff(a.tree_leaf_start)).max()) if a.num_trees else 0
        self._kernel_args = (a.tree_node_start, a.node_feature, a.node_threshold, a.node_nan_left, a.node_zero_left,
                             a.node_left, a.node_right, a.node_bit, a.tree_leaf_start, a.leaf_d, a.leaf_feat_start,
                             a.leaf_features, a.leaf_table_start, a.table, a.leaf_value, a.leaf_r, a.weights,
                             max_nodes)

    @classmethod
    def from_booster(cls, booster: Any, num_iteration: int | None = None, start_iteration: int = 0, *,
                     max_table_bytes: int = DEFAULT_MAX_TABLE_BYTES, max_table_depth: int | None = None,
                     ) -> FastTreeShap:
        """The trees ``booster.predict(..., num_iteration=num_iteration, start_iteration=...)`` would
        use: ``None`` means the best iteration when early stopping recorded one, else all."""
        if num_iteration is None:
            best = int(getattr(booster, "best_iteration", 0) or 0)
            num_iteration = best if (best > 0 and start_iteration <= 0) else -1
        text = booster.model_to_string(num_iteration=num_iteration, start_iteration=start_iteration)
        return cls(build_arrays(text, max_table_bytes=max_table_bytes, max_table_depth=max_table_depth))

    @classmethod
    def from_model_string(cls, model_text: str, *, max_table_bytes: int = DEFAULT_MAX_TABLE_BYTES,
                          max_table_depth: int | None = None) -> FastTreeShap:
        """From LightGBM's text format (e.g. the contents of ``booster.txt``), all its trees."""
        return cls(build_arrays(model_text, max_table_bytes=max_table_bytes, max_table_depth=max_table_depth))

    @property
    def expected_value(self) -> float:
        return self.arrays.expected_value

    @property
    def num_features(self) -> int:
        return self.arrays.num_features

    @property
    def table_bytes(self) -> int:
        return self.arrays.table.nbytes

    def contributions(self, x: Any, n_threads: int | None = None) -> np.ndarray:
        """``(n, num_features + 1)`` like ``pred_contrib``; a 1-D ``x`` is one row. ``n_threads``:
        numba threads for batches (default: all numba's); up to ``SERIAL_MAX_ROWS`` rows run on the
        calling thread only."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1:
            x = x.reshape(1, -1)
        if x.ndim != 2 or x.shape[1] != self.num_features:
            raise ValueError(f"expected (n, {self.num_features}) features, got {x.shape}")
        x = np.ascontiguousarray(x)
        out = np.zeros((x.shape[0], self.num_features + 1), dtype=np.float64)
        if x.shape[0] == 0:
            return out
        n = x.shape[0]
        available = numba.config.NUMBA_NUM_THREADS
        threads = max(1, min(n_threads or available, available))
        if n <= SERIAL_MAX_ROWS:
            _rows(x, out, *self._kernel_args)
        elif threads == 1 or n <= MIN_BLOCK:
            _blocks_serial(x, out, min(BLOCK, n), *self._kernel_args)
        else:
            block = max(MIN_BLOCK, min(BLOCK, -(-n // threads)))
            with _parallel_lock:  # all the threads are in use anyway: one batch at a time
                previous = numba.get_num_threads()
                numba.set_num_threads(threads)
                try:
                    _blocks_parallel(x, out, block, *self._kernel_args)
                finally:
                    numba.set_num_threads(previous)
        out[:, -1] = self.arrays.expected_value
        return out

    def summary(self) -> dict[str, Any]:
        a = self.arrays
        return {"trees": a.num_trees, "internal_nodes": int(len(a.node_feature)), "leaves": int(len(a.leaf_d)),
                "max_path_features": int(a.leaf_d.max()) if len(a.leaf_d) else 0,
                "mean_path_features": float(a.leaf_d.mean()) if len(a.leaf_d) else 0.0,
                "table_depth": a.table_depth,
                "leaves_without_table": int((a.leaf_table_start < 0).sum()),
                "table_bytes": int(a.table.nbytes), "total_bytes": int(a.nbytes)}
