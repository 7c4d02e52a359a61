"""Mamba's selective scan (S6) in ``keras.ops``, with a parallel linear-recurrence scan.

The recurrence ``h_t = a_t * h_{t-1} + b_t`` (``h_{-1} = 0``) is associative in the pairs
``(a, b)``, so it can be evaluated in ``O(log L)`` sequential steps. :func:`linear_recurrence` does
it with the classic odd/even reduction (the algorithm behind ``jax.lax.associative_scan``),
written with static shapes and plain element-wise ``keras.ops`` so that the same code runs on the
TensorFlow and JAX backends, differentiates, and has an exact, countable cost
(:func:`linear_recurrence_flops`). When the sequence length is unknown at trace time (a model
built with ``None`` sides and traced with relaxed shapes) it falls back to a sequential
``keras.ops.scan`` (``keras.ops.associative_scan`` fails on unknown lengths under TensorFlow).

:func:`selective_scan` is ``selective_scan_ref`` of the ``mamba_ssm`` package (the reference the
CUDA kernel is tested against) in channels-last layout, with the four scan directions of VMamba's
SS2D as a separate ``K`` axis:

* ``delta = softplus(delta + delta_bias)``
* ``h_t = exp(delta_t A) * h_{t-1} + delta_t B_t u_t`` (state ``(D, N)`` per direction)
* ``y_t = h_t C_t + D u_t``

Unlike the fused CUDA kernel, the states ``(batch, K, L, D, N)`` are materialised: memory grows as
``K L D N`` floats per image (about 1.1 GB per SS2D call for SA-UMamba's first stage at 592 px).
"""

from __future__ import annotations

from keras import ops


def _slice_axis(x, axis: int, start: int, stop: int):
    index = (slice(None),) * axis + (slice(start, stop),)
    return x[index]


def _pad_axis(x, axis: int, before: int, after: int, value: float):
    widths = [[0, 0] for _ in range(len(x.shape))]
    widths[axis] = [before, after]
    return ops.pad(x, widths, constant_values=value)


def _deinterleave(x, axis: int, pairs: int):
    """Split ``x`` along ``axis`` (length ``2 * pairs``) into its even and odd positions."""
    shape = list(ops.shape(x))
    grouped = ops.reshape(x, shape[:axis] + [pairs, 2] + shape[axis + 1 :])
    even, odd = ops.unstack(grouped, num=2, axis=axis + 1)
    return even, odd


def _interleave(even, odd, axis: int):
    """Inverse of :func:`_deinterleave`: ``[e0, o0, e1, o1, ...]`` along ``axis``."""
    shape = list(ops.shape(even))
    merged = ops.stack([even, odd], axis=axis + 1)
    return ops.reshape(merged, shape[:axis] + [2 * shape[axis]] + shape[axis + 1 :])


def _odd_even_scan(a, b, axis: int, length: int):
    if length == 1:
        return b
    odd_length = length % 2
    if odd_length:
        # An identity element (a=1, b=0) at the end makes the length even; it changes nothing
        # before it and is dropped afterwards.
        a = _pad_axis(a, axis, 0, 1, 1.0)
        b = _pad_axis(b, axis, 0, 1, 0.0)
    pairs = (length + odd_length) // 2
    a_even, a_odd = _deinterleave(a, axis, pairs)
    b_even, b_odd = _deinterleave(b, axis, pairs)
    # Combine neighbours (2k, 2k+1): the pair maps h_{2k-1} to h_{2k+1}.
    b_pair = a_odd * b_even + b_odd
    if pairs > 1:
        h_odd = _odd_even_scan(a_odd * a_even, b_pair, axis, pairs)
        # h_{2k} = a_{2k} h_{2k-1} + b_{2k}, with h_{-1} = 0 for k = 0.
        h_before = _pad_axis(_slice_axis(h_odd, axis, 0, pairs - 1), axis, 1, 0, 0.0)
        h_even = a_even * h_before + b_even
    else:
        h_odd, h_even = b_pair, b_even
    h = _interleave(h_even, h_odd, axis)
    return _slice_axis(h, axis, 0, length) if odd_length else h


def linear_recurrence(a, b, axis: int = 1):
    """All states of ``h_t = a_t * h_{t-1} + b_t`` along ``axis`` with ``h_{-1} = 0``.

    Args:
        a: decays, any shape; ``b``: inputs, same shape.
        axis: the sequence axis (non-negative).

    Returns:
        ``h`` with the shape of ``b``. With a static length: the odd/even parallel scan
        (``ceil(log2 L)`` levels); otherwise a sequential ``keras.ops.scan``.
    """
    if axis < 0:
        raise ValueError(f"linear_recurrence needs a non-negative axis, got {axis}.")
    length = a.shape[axis]
    if length is None:
        # keras.ops.associative_scan fails on unknown lengths under TensorFlow (Keras 3.15), so
        # an unknown length takes a sequential keras.ops.scan over the time axis; a and b travel
        # stacked as one tensor (Keras' TF scan also fails on several unknown-length inputs).
        def step(h, pair):
            h = pair[0] * h + pair[1]
            return h, h

        pairs = ops.stack([ops.moveaxis(a, axis, 0), ops.moveaxis(b, axis, 0)], axis=1)
        _, states = ops.scan(step, ops.zeros_like(pairs[0, 1]), pairs)
        return ops.moveaxis(states, 0, axis)
    return _odd_even_scan(a, b, axis, int(length))


def linear_recurrence_flops(length: int, elements_per_step: int) -> int:
    """TF-profiler FLOPs of :func:`linear_recurrence` (static path) on ``length`` steps.

    ``elements_per_step`` is the number of values per position (the product of the other axes,
    batch included). Per level of ``p`` pairs: ``a_o b_e + b_o`` (2 per pair), and when ``p > 1``
    also ``a_o a_e`` and ``a_e h + b_e`` (3 more); pads, reshapes and slices cost nothing.
    """
    flops = 0
    while length > 1:
        pairs = (length + length % 2) // 2
        flops += (5 if pairs > 1 else 2) * pairs * elements_per_step
        length = pairs
    return flops


def selective_scan(u, delta, a, b, c, d=None, delta_bias=None, delta_softplus: bool = True):
    """Mamba's selective scan for ``K`` independent scan directions (channels-last).

    Args:
        u: inputs ``(batch, K, L, D)``.
        delta: time steps before bias and softplus, ``(batch, K, L, D)``.
        a: state matrix ``(K, D, N)`` (negative; ``-exp(A_log)`` in Mamba).
        b: input projections ``(batch, K, L, N)``.
        c: output projections ``(batch, K, L, N)``.
        d: skip weights ``(K, D)`` or ``None``.
        delta_bias: ``(K, D)`` added to ``delta`` before the softplus, or ``None``.
        delta_softplus: apply ``softplus`` to ``delta``.

    Returns:
        ``y`` of shape ``(batch, K, L, D)``, computed in the dtype of ``u`` (use float32).
    """
    if delta_bias is not None:
        delta = delta + ops.expand_dims(delta_bias, 1)
    if delta_softplus:
        delta = ops.softplus(delta)
    decay = ops.exp(ops.expand_dims(delta, -1) * ops.expand_dims(a, 1))
    drive = ops.expand_dims(delta * u, -1) * ops.expand_dims(b, -2)
    states = linear_recurrence(decay, drive, axis=2)  # (batch, K, L, D, N)
    y = ops.squeeze(ops.matmul(states, ops.expand_dims(c, -1)), -1)
    if d is not None:
        y = y + u * ops.expand_dims(d, 1)
    return y


def selective_scan_cost(
    directions: int,
    length: int,
    channels: int,
    state: int,
    batch: int = 1,
    skip: bool = True,
    bias: bool = True,
) -> tuple[int, int]:
    """(TF-profiler FLOPs, MACs) of :func:`selective_scan` for ``u`` of ``(batch, K, L, D)``.

    FLOPs follow the ops: the delta bias add, ``delta A`` and ``(delta u) B`` products, the
    parallel recurrence, the ``C`` read-out (a batched matmul, ``2 N`` per output) and the skip
    ``u D``; ``softplus`` and ``exp`` have no registered cost. MACs count the work a sequential
    kernel must do: one per state element and step for the recurrence and ``N`` per output for the
    read-out.
    """
    outputs = batch * directions * length * channels
    flops = outputs if bias else 0
    flops += outputs * state  # delta * A
    flops += outputs + outputs * state  # (delta * u) * B
    flops += linear_recurrence_flops(length, batch * directions * channels * state)
    flops += 2 * state * outputs  # states @ C
    if skip:
        flops += 2 * outputs  # + u * D
    macs = outputs * state + outputs * state
    return flops, macs
