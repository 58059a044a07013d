r"""Sliding window plus mean landmarks, an example attention plugin (`--plugin windowed_landmarks`):
o_n = softmax(s [q_n K_W(n)^T | q_n Kbar^T]) [V_W(n); Vbar], s = d^-1/2, W(n) the keys whose rank among the
valid tokens is within `window` of n's, Kbar, Vbar the mean keys and values of `num_landmarks` equal segments
of the valid tokens. Cost O(N (w + m) d) time and memory."""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from attention_zoo import AttentionParams, register


@dataclass(frozen=True)
class WindowedLandmarksParams(AttentionParams):
    window: int = 8
    num_landmarks: int = 4

    def check(self) -> None:
        if self.window < 0 or self.num_landmarks < 1:
            raise ValueError(f"need window >= 0, num_landmarks >= 1; got {self.window}, {self.num_landmarks}")


@register("windowed_landmarks", WindowedLandmarksParams, summary="sliding window + mean landmarks (example)")
def windowed_landmarks(q, k, v, *, key_padding_mask=None, window: int, num_landmarks: int) -> torch.Tensor:
    n, w, m = q.shape[2], window, num_landmarks
    valid = torch.ones_like(q[:, 0, :, 0], dtype=torch.bool) if key_padding_mask is None else key_padding_mask
    order = torch.argsort((~valid).byte(), dim=1, stable=True)  # valid tokens first: rank = position
    q, k, v = (t.gather(2, order[:, None, :, None].expand_as(t)) for t in (q, k, v))
    lengths, pos = valid.sum(1, keepdim=True), torch.arange(n, device=q.device)
    near = pos[:, None] + torch.arange(-w, w + 1, device=q.device)  # [N, 2w+1], the ranks in n's window
    k_win, v_win = (F.pad(t, (0, 0, w, w)).unfold(2, 2 * w + 1, 1) for t in (k, v))  # [B, H, N, d, 2w+1]
    member = F.one_hot(torch.where(pos < lengths, pos * m // lengths, m), m + 1)[..., :m].to(q.dtype)
    count = member.sum(1)  # [B, m] tokens per segment (none in some when fewer than m are valid)
    k_bar, v_bar = (torch.einsum("bnm,bhnd->bhmd", member / count.clamp(min=1)[:, None], t) for t in (k, v))
    ok = torch.cat([(near >= 0) & (near < lengths[:, :, None]), (count > 0)[:, None].expand(-1, n, -1)], -1)
    logits = torch.cat([torch.einsum("bhnd,bhndw->bhnw", q, k_win), q @ k_bar.transpose(-1, -2)], -1)
    probs = torch.softmax((logits * q.shape[-1] ** -0.5).masked_fill(~ok[:, None], float("-inf")), dim=-1)
    out = torch.einsum("bhnw,bhndw->bhnd", probs[..., : 2 * w + 1], v_win) + probs[..., 2 * w + 1 :] @ v_bar
    return out.gather(2, order.argsort(1)[:, None, :, None].expand_as(out))  # back to the input order
