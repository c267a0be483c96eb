"""The torch networks (feed-forward, LSTM, gated mixture) and their one training loop.

Every network starts with a `ZScore` layer whose mean/std are buffers fitted on the training rows, so a
saved network takes the raw window inputs (float32, shape (n, 55)) and returns P(up), shape (n,).
Training is deterministic: one thread, a private RNG stream seeded per fit (the caller's global torch
RNG is left as it was), and a seeded shuffling generator.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one thread: reductions then happen in a fixed order (byte-identical results),
    and tiny networks are faster without thread hand-offs. Restores the previous setting."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class ZScore(nn.Module):
    """(x - mean) / std with statistics stored as buffers (saved and logged with the network)."""

    def __init__(self, n_inputs: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_inputs))
        self.register_buffer("std", torch.ones(n_inputs))

    mean: torch.Tensor
    std: torch.Tensor

    def fit(self, x: np.ndarray) -> ZScore:
        x = np.asarray(x, dtype=np.float64)
        std = x.std(axis=0)  # population std, as sklearn's StandardScaler
        std[std == 0] = 1.0  # a constant input stays constant instead of dividing by zero
        self.mean.copy_(torch.from_numpy(x.mean(axis=0)))
        self.std.copy_(torch.from_numpy(std))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def _mlp(n_inputs: int, hidden_sizes: list[int], dropout: float) -> nn.Sequential:
    """n_inputs → h1 → … → 1 logit, ReLU and dropout after every hidden layer."""
    layers: list[nn.Module] = []
    width = n_inputs
    for size in hidden_sizes:
        layers += [nn.Linear(width, int(size)), nn.ReLU(), nn.Dropout(dropout)]
        width = int(size)
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


def _binary_log_probs(logit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return F.logsigmoid(logit), F.logsigmoid(-logit)


class ProbabilityNet(nn.Module):
    """A binary classifier defined by (log P(up), log P(down)); forward returns P(up), shape (n,).

    Working in log space lets the mixture compute its exact log-likelihood without clipping. `init_args`
    are the constructor's arguments: with `NETWORKS` and the state dict they rebuild the network (no pickle).
    """

    init_args: dict

    def __init__(self, n_inputs: int):
        super().__init__()
        self.scale = ZScore(n_inputs)

    def log_probs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.log_probs(x)[0].exp()

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean binary cross-entropy (log loss)."""
        log_up, log_down = self.log_probs(x)
        return -(y * log_up + (1 - y) * log_down).mean()


class FeedForwardNet(ProbabilityNet):
    """z-score → h1 → … → 1, ReLU, dropout, sigmoid (the LLMoE expert and the MLP baseline)."""

    def __init__(self, n_inputs: int, hidden_sizes: list[int], dropout: float):
        super().__init__(n_inputs)
        self.init_args = {
            "n_inputs": n_inputs,
            "hidden_sizes": [int(h) for h in hidden_sizes],
            "dropout": float(dropout),
        }
        self.body = _mlp(n_inputs, hidden_sizes, dropout)

    def log_probs(self, x):
        return _binary_log_probs(self.body(self.scale(x)).squeeze(-1))


class LSTMNet(ProbabilityNet):
    """LSTM over the window's days, oldest first; the last step's (day t's) state → dropout → logit."""

    def __init__(self, n_inputs: int, n_daily_features: int, hidden_size: int, dropout: float):
        super().__init__(n_inputs)
        self.init_args = {
            "n_inputs": n_inputs,
            "n_daily_features": int(n_daily_features),
            "hidden_size": int(hidden_size),
            "dropout": float(dropout),
        }
        if n_inputs % n_daily_features:
            raise ValueError(f"{n_inputs} inputs are not a whole number of days of {n_daily_features} features")
        self.n_daily_features = n_daily_features
        self.lstm = nn.LSTM(n_daily_features, int(hidden_size), batch_first=True)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(int(hidden_size), 1))

    def sequences(self, x: torch.Tensor) -> torch.Tensor:
        """Scaled inputs as (n, window, daily features): the columns are day-major, oldest day first."""
        return self.scale(x).reshape(x.shape[0], -1, self.n_daily_features)

    def log_probs(self, x):
        out, _ = self.lstm(self.sequences(x))
        return _binary_log_probs(self.head(out[:, -1, :]).squeeze(-1))


class GatedMoENet(ProbabilityNet):
    """Traditional mixture of experts: P(up) = Σ_i gate_i(x) · sigmoid(expert_i(x)), gate = softmax(linear(x)).

    Gate and experts are trained together on the mixture's log-likelihood.
    """

    def __init__(self, n_inputs: int, n_experts: int, hidden_sizes: list[int], dropout: float):
        super().__init__(n_inputs)
        self.init_args = {
            "n_inputs": n_inputs,
            "n_experts": int(n_experts),
            "hidden_sizes": [int(h) for h in hidden_sizes],
            "dropout": float(dropout),
        }
        self.gate = nn.Linear(n_inputs, int(n_experts))
        self.experts = nn.ModuleList(_mlp(n_inputs, hidden_sizes, dropout) for _ in range(int(n_experts)))

    def gate_weights(self, x: torch.Tensor) -> torch.Tensor:
        """(n, n_experts) mixing weights; each row sums to 1."""
        return torch.softmax(self.gate(self.scale(x)), dim=-1)

    def log_probs(self, x):
        z = self.scale(x)
        log_gate = torch.log_softmax(self.gate(z), dim=-1)
        logits = torch.cat([expert(z) for expert in self.experts], dim=-1)
        log_up = torch.logsumexp(log_gate + F.logsigmoid(logits), dim=-1)
        log_down = torch.logsumexp(log_gate + F.logsigmoid(-logits), dim=-1)
        return log_up, log_down


NETWORKS: dict[str, type[ProbabilityNet]] = {c.__name__: c for c in (FeedForwardNet, LSTMNet, GatedMoENet)}


def rebuild_network(class_name: str, init_args: dict, state_dict: dict) -> ProbabilityNet:
    """A saved network from its class name, constructor arguments and weights, in eval mode."""
    if class_name not in NETWORKS:
        raise ValueError(f"unknown network class {class_name!r} (expected one of {sorted(NETWORKS)})")
    net = NETWORKS[class_name](**init_args)
    net.load_state_dict(state_dict)
    return net.eval()


# Validation log loss (nats) below which nothing is left to learn. Only a network whose days all share one target
# gets there (the oracle router's experts: an upper bound); its loss would otherwise shrink for all max_epochs.
# Models of real routers sit near log 2 = 0.69 and never reach it.
LEARNT_LOSS = 1e-3


def train_network(
    build: Callable[[], ProbabilityNet],
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    learning_rate: float,
    max_epochs: int,
    patience: int,
    batch_size: int,
    seed: int,
) -> tuple[ProbabilityNet, pd.DataFrame, int]:
    """Adam on minibatch log loss; early stopping on validation log loss, best weights restored. Training also
    stops once the validation loss is below LEARNT_LOSS (see there).

    Returns (network in eval mode, history with one row per epoch: epoch, train_loss, val_loss, best epoch).
    train_loss is the mean minibatch loss of the epoch (dropout on); val_loss is computed in eval mode.
    """
    if len(x_train) == 0 or len(x_val) == 0:
        raise ValueError(f"training needs training and validation rows (got {len(x_train)} and {len(x_val)})")
    xt = torch.as_tensor(np.asarray(x_train, dtype=np.float32))
    yt = torch.as_tensor(np.asarray(y_train, dtype=np.float32))
    xv = torch.as_tensor(np.asarray(x_val, dtype=np.float32))
    yv = torch.as_tensor(np.asarray(y_val, dtype=np.float32))
    with single_thread(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # weight initialisation and dropout masks
        shuffle = torch.Generator().manual_seed(seed)
        net = build()
        net.scale.fit(x_train)
        optimizer = torch.optim.Adam(net.parameters(), lr=learning_rate)
        best_loss, best_epoch, best_state = float("inf"), 0, None
        rows = []
        for epoch in range(1, max_epochs + 1):
            net.train()
            batch_losses = []
            for idx in torch.randperm(len(xt), generator=shuffle).split(batch_size):
                optimizer.zero_grad()
                loss = net.loss(xt[idx], yt[idx])
                loss.backward()
                optimizer.step()
                batch_losses.append(loss.item())
            net.eval()
            with torch.no_grad():
                val_loss = net.loss(xv, yv).item()
            rows.append({"epoch": epoch, "train_loss": float(np.mean(batch_losses)), "val_loss": val_loss})
            if val_loss < best_loss:
                best_loss, best_epoch = val_loss, epoch
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            if val_loss < LEARNT_LOSS or epoch - best_epoch >= patience:
                break
        assert best_state is not None  # max_epochs >= 1: at least one epoch improved on inf
        net.load_state_dict(best_state)
        net.eval()
    return net, pd.DataFrame(rows, columns=["epoch", "train_loss", "val_loss"]), best_epoch


def predict_network(net: ProbabilityNet, x: np.ndarray) -> np.ndarray:
    """P(up) as float64, shape (n,); eval mode, one thread (deterministic)."""
    net.eval()
    with single_thread(), torch.no_grad():
        return net(torch.as_tensor(np.asarray(x, dtype=np.float32))).numpy().astype(np.float64)
