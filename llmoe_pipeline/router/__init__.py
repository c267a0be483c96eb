"""The LLM router: prompts from 5-day windows, a language model's p_optimistic, a cache.

Pure modules (no Dagster): `prompt` builds the text, `model` resolves the weights, `backends` runs them (the
fixed-shape transformers path, vLLM, an OpenAI-compatible server; one typed `RouterBackendConfig`), `cache`
stores the results, `labels` ties them together; `variants` lists the routing rules the ablations compare and
`regimes` turns a score into a regime. This package imports nothing itself, so a light module here (`regimes`,
`variants`) does not load torch.
"""
