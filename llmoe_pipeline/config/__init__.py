"""Configuration: `protocol` (the experiment: data, split, router, experts, baselines, backtest), `settings` (the
protocol plus one section per external system, loaded once from YAML), `section` (their common base)."""
