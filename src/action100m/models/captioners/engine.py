"""A continuous-batching engine for in-process vision-language models.

No serving engine batches PerceptionLM or Llama-3.2-Vision continuously, so the
captioners own this loop. The engine keeps ``slots`` decoding rows. Each row has a
fixed region of a preallocated KV cache (:class:`SlotCache`): a request is
prefilled alone into a free row (its vision pass and prompt, batch 1), and then
decodes together with every other busy row, one token per row per step, each row
writing its key and value at its own position. A row that ends (EOS or its
budget) is freed at once and the next waiting request is prefilled into it, so
no row waits for the longest answer of a batch.

A *job* is one media prompt and the questions asked about it (a node's clip, its
action and its caption question). The questions are answered one after another
in the same row: after an answer ends the row is cut back to the shared prefix
(its position rewinds; nothing is copied) and the next question's suffix is
prefilled in its place. Every answer equals the one a lone ``generate`` call
gives (greedy), because every row sees exactly its own tokens at their own
positions.

The decoding step has fixed shapes (``slots`` rows, a fixed cache length), so on
CUDA it is captured once as a CUDA graph and replayed; the per-step Python work
does not grow with the number of rows (one small device-to-host copy of the
finished flags per step).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers.cache_utils import Cache, CacheLayerMixin

from action100m.models.work import WorkCounter

logger = logging.getLogger(__name__)
# The engines of one process (PerceptionLM's and Llama's) take turns on the
# device: a step or a prefill runs whole, so each engine's busy time is its own
# and no graph is captured while the other engine launches work.
DEVICE_TURN = threading.RLock()


# -- attention -----------------------------------------------------------------

ATTENTION = "action100m_slots"


def slot_attention(module, query, key, value, attention_mask, **kwargs):
    """Decoding attention that reads each key and value once.

    With a mask, PyTorch's fused attention cannot group query heads on CUDA, so
    transformers repeats every key and value head for each query head: a copy of
    the whole cache at every step. One token per row needs no fused kernel: the
    query heads of a group are multiplied with their shared key head directly.
    Prefills (several query tokens) go to transformers' SDPA attention.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if query.shape[2] != 1:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, **kwargs
        )
    rows, heads, _, dim = query.shape
    groups = heads // key.shape[1]
    scaling = kwargs.get("scaling") or dim**-0.5
    grouped = query.reshape(rows, key.shape[1], groups, dim)
    scores = torch.matmul(grouped, key.transpose(-1, -2)).float() * scaling
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, -float("inf"))
        else:
            scores = scores + attention_mask
    weights = torch.softmax(scores, dim=-1).to(value.dtype)
    out = torch.matmul(weights, value)  # (rows, kv heads, groups, dim)
    return out.reshape(rows, heads, 1, dim).transpose(1, 2), None


def _register_attention() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTENTION, slot_attention)
    AttentionMaskInterface.register(ATTENTION, sdpa_mask)


def buckets(slots: int) -> list[int]:
    """Row counts a decoding step is prepared for: powers of two, and ``slots``."""
    sizes, size = [], 1
    while size < slots:
        sizes.append(size)
        size *= 2
    return [*sizes, slots]


# -- the cache ---------------------------------------------------------------


class _SlotState:
    """What the cache layers do on the next forward pass (shared by all layers).

    ``row is None``: a decoding step, every row writes one key at ``write_at``.
    Otherwise a prefill of one row, written at ``start`` onwards.
    """

    def __init__(self, write_at: torch.Tensor) -> None:
        self.write_at = write_at
        self.rows = write_at.shape[0]  # a decoding step covers rows [0, rows)
        self.row: int | None = None
        self.start = 0


class SlotLayer(CacheLayerMixin):
    """One layer's keys and values: ``(slots, heads, capacity, head_dim)``.

    ``keys`` and ``values`` are the rows a decoding step covers (all of them
    during a prefill); the buffers themselves are ``buffers``.
    """

    is_compileable = True
    is_sliding = False

    def __init__(
        self, state: _SlotState, shape: tuple[int, ...], dtype, device, cross: bool
    ) -> None:
        self.state, self.cross = state, cross
        super().__init__()
        self.buffers = (
            torch.zeros(shape, dtype=dtype, device=device),
            torch.zeros(shape, dtype=dtype, device=device),
        )
        self.device = self.buffers[0].device
        self.is_initialized = True

    def _view(self, index: int):
        buffers = getattr(self, "buffers", None)
        if buffers is None:
            return None
        if self.state.row is None:
            return buffers[index][: self.state.rows]
        return buffers[index]

    keys = property(lambda self: self._view(0), lambda self, value: None)
    values = property(lambda self: self._view(1), lambda self, value: None)

    def lazy_initialization(self, key_states, value_states) -> None:  # allocated
        return None

    def update(self, key_states, value_states, *args, **kwargs):
        state = self.state
        if state.row is None:
            keys, values = self.keys, self.values
            if self.cross:  # decoding never writes image states
                return keys, values
            n, heads, _, dim = keys.shape
            index = state.write_at[:n].view(n, 1, 1, 1).expand(n, heads, 1, dim)
            keys.scatter_(2, index, key_states)
            values.scatter_(2, index, value_states)
            return keys, values
        keys, values = self.buffers
        row, start = state.row, 0 if self.cross else state.start
        end = start + key_states.shape[2]
        keys[row, :, start:end] = key_states[0]
        values[row, :, start:end] = value_states[0]
        return keys[row : row + 1, :, :end], values[row : row + 1, :, :end]

    def move(self, source: int, target: int) -> None:
        """Copy row ``source`` into row ``target``."""
        for buffer in self.buffers:
            buffer[target] = buffer[source]

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.buffers[0].shape[2], 0

    def get_seq_length(self) -> int:
        return 0

    def get_max_length(self) -> int:
        return self.buffers[0].shape[2]


class SlotCache(Cache):
    """The engine's KV cache: one fixed region per decoding row."""

    is_compileable = True

    def __init__(self, layers: list[SlotLayer], state: _SlotState) -> None:
        super().__init__(layers=layers)
        self.state = state

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return 0


# -- what the engine is given --------------------------------------------------


@dataclass
class Question:
    """A suffix asked after a job's prefix, and its answer's limits."""

    suffix_ids: list[int]
    max_new_tokens: int
    min_new_tokens: int = 0
    # the answer is ended with EOS after this many tokens (None: free)
    stop_at: int | None = None
    future: Future = field(default_factory=Future)


@dataclass
class Job:
    """A prompt with media (the prefix) and the questions that continue it.

    Attributes:
        inputs: The processor's batch-1 tensors of the prefix (ids, mask, pixels).
        questions: Answered in this order, each from the prefix alone.
        cross_mask: Mllama: the prefix's last row of ``cross_attention_mask``.
        frames: Frames through the vision tower (counted as ``vision_frames``).
    """

    inputs: dict[str, Any]
    questions: list[Question]
    frames: int = 0
    cross_mask: torch.Tensor | None = None


@dataclass
class _Row:
    job: Job
    prefix_len: int
    question: int = 0
    prefix_logits: torch.Tensor | None = None


# -- the engine ------------------------------------------------------------------


def kv_geometry(text) -> tuple[int, int]:
    """Key/value heads and head size of the language model of config ``text``."""
    heads = getattr(text, "num_key_value_heads", None) or text.num_attention_heads
    dim = (
        getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    )
    return heads, dim


def kv_bytes_per_row(model, capacity: int, cross_capacity: int) -> int:
    """Bytes of one row's keys and values in every layer."""
    text = model.config.get_text_config()
    heads, dim = kv_geometry(text)
    cross = set(getattr(text, "cross_attention_layers", None) or ())
    element = torch.finfo(model.dtype).bits // 8
    tokens = sum(
        cross_capacity if i in cross else capacity
        for i in range(text.num_hidden_layers)
    )
    return 2 * heads * dim * element * tokens


class SlotEngine:
    """Continuous batching of one model in a background thread.

    Args:
        model: A transformers image-text-to-text model (PerceptionLM or Mllama).
        slots: Decoding rows.
        capacity: Cache positions per row (prompt plus answer); grows if a job
            needs more.
        eos_ids: Tokens that end an answer.
        pad_id: Token fed to idle rows.
        suppress_ids: Tokens never generated (the model's ``suppress_tokens``).
        cross_capacity: Mllama: image positions per row (tiles times patches).
        cuda_graphs: Capture the decoding step as a CUDA graph (CUDA only).
        work: Where the engine counts its steps and tokens.
        decode: Token ids -> text.
    """

    def __init__(
        self,
        model,
        slots: int,
        capacity: int,
        eos_ids: list[int],
        pad_id: int,
        suppress_ids: list[int],
        work: WorkCounter,
        decode: Callable[[list[int]], str],
        cross_capacity: int = 0,
        cuda_graphs: bool = True,
    ) -> None:
        self.model, self.slots, self.work, self.decode = model, slots, work, decode
        self.buckets = buckets(slots)
        self.device = next(model.parameters()).device
        self.dtype = model.dtype
        self.eos = torch.tensor(eos_ids, device=self.device)
        self.eos_ids = set(eos_ids)
        self.pad_id = pad_id
        self.suppress = torch.tensor(suppress_ids, dtype=torch.long, device=self.device)
        text = model.config.get_text_config()
        self.cross_layers = set(getattr(text, "cross_attention_layers", None) or ())
        self.cross_capacity = cross_capacity
        self.num_patches = 0
        if self.cross_layers:
            vision = model.config.vision_config
            self.num_patches = (vision.image_size // vision.patch_size) ** 2 + 1
        self.use_graphs = cuda_graphs and self.device.type == "cuda"
        self._attention = text._attn_implementation
        self.eager_mask = self._attention == "eager"
        if not self.eager_mask:  # decoding reads the cache once (slot_attention)
            _register_attention()
            text._attn_implementation_internal = ATTENTION
        self.capacity = 0
        self._allocate(capacity)
        self.rows: list[_Row | None] = [None] * slots
        self.jobs: queue.Queue[Job | None] = queue.Queue()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.busy_s = 0.0  # seconds of device work (prefills and steps)
        self.step_s = 0.0  # of which decoding steps
        self.bucket_steps: Counter[int] = Counter()  # decoding steps per row count

    # -- buffers ------------------------------------------------------------

    def _allocate(self, capacity: int) -> None:
        """Cache regions of ``capacity`` positions per row (old contents kept)."""
        text = self.model.config.get_text_config()
        heads, dim = kv_geometry(text)
        device, slots = self.device, self.slots
        old = getattr(self, "cache", None)
        write_at = torch.zeros(slots, dtype=torch.long, device=device)
        if old is not None:
            write_at = old.state.write_at
        state = _SlotState(write_at)
        layers = []
        for i in range(text.num_hidden_layers):
            cross = i in self.cross_layers
            length = self.cross_capacity if cross else capacity
            layer = SlotLayer(
                state, (slots, heads, length, dim), self.dtype, device, cross
            )
            if old is not None:
                for new_buffer, old_buffer in zip(
                    layer.buffers, old.layers[i].buffers, strict=True
                ):
                    new_buffer[:, :, : old_buffer.shape[2]] = old_buffer
            layers.append(layer)
        self.cache = SlotCache(layers, state)
        self.capacity = capacity
        # step inputs and state (fixed addresses, for the graph)
        if old is None:
            self.tokens = torch.full((slots,), self.pad_id, device=device)
            self.active = torch.zeros(slots, dtype=torch.bool, device=device)
            self.steps = torch.zeros(slots, dtype=torch.long, device=device)
            self.budget = torch.ones(slots, dtype=torch.long, device=device)
            self.min_new = torch.zeros(slots, dtype=torch.long, device=device)
            self.stop_at = torch.full((slots,), 2**40, device=device)
            self.cross_mask = None
            if self.cross_layers:
                tiles = max(1, self.cross_capacity // max(1, self.num_patches))
                self.cross_mask = torch.zeros(
                    (slots, 1, 1, tiles), dtype=torch.long, device=device
                )
                self.cross_mask[:, :, :, 0] = 1
        out = torch.full((slots, capacity), self.pad_id, device=device)
        if old is not None:
            out[:, : self.out.shape[1]] = self.out
        self.out = out  # every row's answer so far
        self.positions = torch.arange(capacity, device=device)
        self._graphs: dict[int, tuple[Any, torch.Tensor]] = {}
        self.graph_mode = "eager"
        if self.use_graphs:
            with DEVICE_TURN:
                self._capture()

    # -- the decoding step ---------------------------------------------------

    def _mask(self, visible: torch.Tensor) -> torch.Tensor:
        """The attention mask of ``visible`` (True: attend) in the form the
        attention implementation takes: boolean, or additive for eager."""
        if not self.eager_mask:
            return visible
        low = torch.finfo(self.dtype).min
        zeros = torch.zeros(visible.shape, dtype=self.dtype, device=self.device)
        return zeros.masked_fill(~visible, low)

    def _forward_step(self, n: int) -> torch.Tensor:
        """Logits of the next token of rows ``[0, n)`` (idle ones included)."""
        write_at = self.cache.state.write_at[:n]
        visible = self.positions[None, :] <= write_at[:, None]
        mask = self._mask(visible[:, None, None, :])
        extra = {}
        if self.cross_mask is not None:
            extra["cross_attention_mask"] = self.cross_mask[:n]
        out = self.model(
            input_ids=self.tokens[:n, None],
            position_ids=write_at[:, None],
            attention_mask=mask,
            cache=self.cache,
            use_cache=True,
            logits_to_keep=1,
            **extra,
        )
        return out.logits[:, -1]

    def _capture(self) -> None:
        """Record the decoding step of every bucket as a CUDA graph (on any
        error: eager steps)."""
        state = self.cache.state
        state.row = None
        graphs: dict[int, tuple[Any, torch.Tensor]] = {}
        pool = None
        try:
            for n in reversed(self.buckets):
                state.rows = n
                stream = torch.cuda.Stream()
                stream.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(stream), torch.inference_mode():
                    for _ in range(2):
                        self._forward_step(n)
                torch.cuda.current_stream().wait_stream(stream)
                graph = torch.cuda.CUDAGraph()
                capture = torch.cuda.graph(
                    graph, pool=pool, capture_error_mode="thread_local"
                )
                with capture, torch.inference_mode():
                    logits = self._forward_step(n)
                pool = graph.pool()
                graphs[n] = (graph, logits)
            self._graphs = graphs
            self.graph_mode = "cuda_graph"
        except Exception as exc:  # noqa: BLE001 - eager decoding still works
            logger.warning("decoding step not captured as a CUDA graph: %s", exc)
            self._graphs, self.use_graphs, self.graph_mode = {}, False, "eager"
        finally:
            state.rows = self.slots

    def _logits(self, n: int) -> torch.Tensor:
        state = self.cache.state
        state.row, state.rows = None, n
        try:
            if n in self._graphs:
                graph, logits = self._graphs[n]
                graph.replay()
                return logits
            return self._forward_step(n)
        finally:
            state.rows = self.slots

    def _choose(self, logits, steps, min_new, stop_at) -> torch.Tensor:
        """Greedy next tokens under the suppression and length rules."""
        logits = logits.float()
        if self.suppress.numel():
            logits[..., self.suppress] = -float("inf")
        early = (steps < min_new)[..., None]
        eos_cols = logits[..., self.eos]
        logits[..., self.eos] = torch.where(early, -float("inf"), eos_cols)
        chosen = logits.argmax(-1)
        return torch.where(steps >= stop_at, self.eos[0], chosen)

    # -- rows -------------------------------------------------------------------

    def _prefill(self, slot: int, inputs: dict[str, Any], start: int) -> torch.Tensor:
        """Run ``inputs`` (batch 1) into ``slot`` from ``start``; last logits."""
        ids = inputs["input_ids"]
        length = ids.shape[1]
        state = self.cache.state
        state.row, state.start = slot, start
        positions = torch.arange(start, start + length, device=self.device)
        keys = torch.arange(start + length, device=self.device)
        mask = self._mask((keys[None, :] <= positions[:, None])[None, None])
        extra = {
            k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")
        }
        try:
            out = self.model(
                input_ids=ids,
                position_ids=positions[None],
                attention_mask=mask,
                cache=self.cache,
                use_cache=True,
                logits_to_keep=1,
                **extra,
            )
        finally:
            state.row = None
        self.work.add(prefill_tokens=length)
        return out.logits[0, -1]

    def _ask(self, slot: int, row: _Row) -> None:
        """Prefill the row's current question and take its first token."""
        question = row.job.questions[row.question]
        start = row.prefix_len
        if question.suffix_ids:
            ids = torch.tensor([question.suffix_ids], device=self.device)
            logits = self._prefill(slot, {"input_ids": ids}, start)
        else:
            logits = row.prefix_logits
        stop_at = 2**40 if question.stop_at is None else question.stop_at
        limits = torch.tensor(
            [[0], [question.min_new_tokens], [stop_at]], device=self.device
        )
        first = int(self._choose(logits[None], *limits)[0])
        position = start + len(question.suffix_ids)
        self.out[slot, 0] = first
        self.tokens[slot] = first
        self.cache.state.write_at[slot] = position
        self.steps[slot] = 1
        self.budget[slot] = question.max_new_tokens
        self.min_new[slot] = question.min_new_tokens
        self.stop_at[slot] = stop_at
        self.active[slot] = True
        if first in self.eos_ids or question.max_new_tokens <= 1:
            self._finish(slot)

    def _admit(self, slot: int, job: Job) -> None:
        """Prefill a job's prefix into a free slot and ask its first question."""
        need = job.inputs["input_ids"].shape[1] + max(
            len(q.suffix_ids) + q.max_new_tokens for q in job.questions
        )
        if need > self.capacity:
            self._allocate(-(-need // 256) * 256)
        if job.cross_mask is not None:
            tiles = self.cross_mask.shape[-1]
            row_mask = torch.zeros(tiles, dtype=torch.long, device=self.device)
            found = job.cross_mask.reshape(-1)[:tiles]
            row_mask[: found.numel()] = found
            self.cross_mask[slot, 0, 0] = row_mask
        logits = self._prefill(slot, job.inputs, 0)
        self.work.add(vision_frames=job.frames)
        row = _Row(job, job.inputs["input_ids"].shape[1], prefix_logits=logits)
        self.rows[slot] = row
        self._ask(slot, row)

    def _finish(self, slot: int) -> None:
        """An answer ended: hand it over; ask the next question or free the row."""
        row = self.rows[slot]
        tokens = self.out[slot, : int(self.steps[slot])].tolist()
        eos = self.eos_ids
        text = self.decode([t for t in tokens if t not in eos])
        self.work.add(generated_tokens=len(tokens))
        question = row.job.questions[row.question]
        question.future.set_result(text)
        self.active[slot] = False
        row.question += 1
        if row.question < len(row.job.questions):
            self._ask(slot, row)
        else:
            self.rows[slot] = None

    def _fail_row(self, slot: int, exc: BaseException) -> None:
        row = self.rows[slot]
        self.rows[slot] = None
        self.active[slot] = False
        if row is not None:
            for question in row.job.questions[row.question :]:
                if not question.future.done():
                    question.future.set_exception(exc)

    # -- the loop ----------------------------------------------------------------

    def submit(self, job: Job) -> None:
        """Queue a job; its questions' futures resolve as their answers end."""
        self.start()
        self.jobs.put(job)

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._stop = False
                self._thread = threading.Thread(
                    target=self._loop, name="slot-engine", daemon=True
                )
                self._thread.start()

    def stop(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._stop = True
            self.jobs.put(None)
            thread.join()
        text = self.model.config.get_text_config()
        text._attn_implementation_internal = self._attention

    def _fill(self, block: bool) -> None:
        """Admit waiting jobs into free rows (waits for one when all are idle)."""
        for slot in range(self.slots):
            if self.rows[slot] is not None:
                continue
            try:
                job = self.jobs.get(block=block and not any(self.rows))
            except queue.Empty:
                return
            if job is None:
                return
            try:
                with DEVICE_TURN, torch.inference_mode():
                    started = time.perf_counter()
                    self._admit(slot, job)
                    self.busy_s += time.perf_counter() - started
            except Exception as exc:  # noqa: BLE001 - this job fails, others go on
                logger.warning("caption request failed at prefill: %s", exc)
                self.rows[slot] = self.rows[slot] or _Row(job, 0)
                self._fail_row(slot, exc)

    def _loop(self) -> None:
        while not self._stop:
            self._fill(block=True)
            busy = [s for s in range(self.slots) if self.rows[s] is not None]
            if not busy:
                continue
            waiting = not self.jobs.empty()
            try:
                with DEVICE_TURN, torch.inference_mode():
                    started = time.perf_counter()
                    self._step(waiting)
                    spent = time.perf_counter() - started
                    self.busy_s += spent
                    self.step_s += spent
            except Exception as exc:  # noqa: BLE001 - the rows in flight fail
                logger.warning("decoding step failed: %s", exc)
                for slot in busy:
                    self._fail_row(slot, exc)

    def _compact(self) -> None:
        """Move busy rows down so that the step's bucket is as small as it can be."""
        busy = [slot for slot, row in enumerate(self.rows) if row is not None]
        if not busy:
            return
        bucket = next(b for b in self.buckets if b >= len(busy))
        free = [slot for slot in range(bucket) if self.rows[slot] is None]
        for source in (slot for slot in busy if slot >= bucket):
            target = free.pop(0)
            for layer in self.cache.layers:
                layer.move(source, target)
            for tensor in (
                self.tokens, self.active, self.steps, self.budget, self.min_new,
                self.stop_at, self.out, self.cache.state.write_at,
            ):  # fmt: skip
                tensor[target] = tensor[source]
            if self.cross_mask is not None:
                self.cross_mask[target] = self.cross_mask[source]
            self.active[source] = False
            self.rows[target], self.rows[source] = self.rows[source], None

    def _step(self, waiting: bool) -> None:
        """One token for every busy row; finished answers handed over."""
        if not waiting:
            self._compact()
        top = max(slot for slot, row in enumerate(self.rows) if row is not None) + 1
        n = next(b for b in self.buckets if b >= top)
        active = self.active[:n].clone()
        logits = self._logits(n)
        steps, out = self.steps[:n], self.out[:n]
        chosen = self._choose(logits, steps, self.min_new[:n], self.stop_at[:n])
        chosen = torch.where(active, chosen, self.pad_id)
        column = steps.clamp(max=out.shape[1] - 1)[:, None]
        out.scatter_(1, column, chosen[:, None])
        self.tokens[:n] = chosen
        self.cache.state.write_at[:n] += active.long()
        steps += active.long()
        ended = active & (torch.isin(chosen, self.eos) | (steps >= self.budget[:n]))
        self.active[:n] &= ~ended
        host = torch.cat([ended.long(), active.sum()[None]]).cpu()
        self.work.add(decode_steps=1)
        self.bucket_steps[n] += 1
        if waiting:
            self.work.add(slot_steps=n, busy_tokens=int(host[-1]))
        else:
            self.work.add(drain_steps=1)
        for slot in host[:-1].nonzero().flatten().tolist():
            self._finish(slot)
