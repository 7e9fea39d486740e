"""Attention dilution in a Hugging Face BERT: padding left unmasked vs. masked by ``attention_mask``.

A small BERT with random weights (built from its config: nothing is downloaded) reads two
sequences padded to 32 tokens. Without an ``attention_mask`` the real tokens spend part of their
attention entropy on the padding (ADI > 0, seed Eq. 7); with the mask, padding keys get zero
weight and the ADI is 0. The adapter measures through the model's attention interface and puts
its attention implementation back afterwards.

    python examples/hf_bert.py [--seed 0]
"""

from __future__ import annotations

import argparse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch
    from transformers import BertConfig, BertModel

    import attndilute as ad
    from attndilute.instrument.adapters import hf_adapters  # noqa: F401 - registers the adapter

    torch.manual_seed(args.seed)
    config = BertConfig(
        hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128, vocab_size=1000
    )
    model = BertModel(config).eval()
    lengths = torch.tensor([20, 9])  # real tokens per sequence; the rest is padding
    real = torch.arange(32)[None, :] < lengths[:, None]  # (B, L) bool
    input_ids = torch.randint(1, config.vocab_size, (2, 32)).masked_fill(~real, config.pad_token_id)
    scans = [f"len{int(n)}" for n in lengths]

    unmasked = ad.measure_adi(model, input_ids, real, scans=scans)
    masked = ad.measure_adi(
        model, input_ids, real, scans=scans, forward_kwargs={"attention_mask": real.long()}
    )

    print(
        f"BERT ({config.num_hidden_layers} layers x {config.num_attention_heads} heads, random weights), "
        f"attention implementation: {model.config._attn_implementation}"
    )
    print(
        "ADI per layer (mean over heads); padding fraction "
        + ", ".join(
            f"{s}={float(pf):.2f}" for s, pf in zip(scans, unmasked["padding_fraction"].values, strict=True)
        )
    )
    header = f"{'layer':<34}" + "".join(f"{'no mask ' + s:>14}" for s in scans)
    header += "".join(f"{'mask ' + s:>14}" for s in scans)
    print(header)
    for layer in range(unmasked.sizes["layer"]):
        row = f"{unmasked['name'].values[layer]:<34}"
        for ds in (unmasked, masked):
            for scan in range(ds.sizes["scan"]):
                row += f"{float(ds['adi'].isel(scan=scan, layer=layer).mean('head')):>14.4f}"
        print(row)


if __name__ == "__main__":
    main()
