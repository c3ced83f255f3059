import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    def __init__(self, p=0.1):
        super().__init__()
        self.attn_p = p

    def forward(self, q, k, v, mask=None):
        a = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_p)  # TE003
        b = F.scaled_dot_product_attention(q, k, v, mask, 0.1)  # TE003
        c = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_p if self.training else 0.0)
        p = self.attn_p if self.training else 0.0
        d = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        e = F.scaled_dot_product_attention(q, k, v)
        f = F.scaled_dot_product_attention(q, k, v, dropout_p=0.0)
        return a + b + c + d + e + f


def sdpa_forward(module, q, k, v, dropout=0.0):
    return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)  # handed in by the caller
