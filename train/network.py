"""The network and loss of a training run: building them from the config, starting weights
(``init_from``), and the frozen-encoder switch of a stage.
"""

from __future__ import annotations

from torch import nn

from filmclean.errors import FilmcleanError, InputError

from .config import TrainConfig


def _initial_weights(net: nn.Module, config: TrainConfig) -> None:
    """Load ``config.init_from`` into ``net`` (a single-frame maskguided model may start a temporal
    one, a fill-based one or one with more fine blocks or a grown mask: their
    ``from_single`` / ``from_base`` / ``grown_from`` compute what it computes)."""
    from filmclean.modelfile import checkpoint_network, is_training_checkpoint, load_torch_network

    if is_training_checkpoint(config.init_from):  # type: ignore[arg-type]
        src, src_arch, _ = checkpoint_network(config.init_from)  # type: ignore[arg-type]
    else:
        src, spec = load_torch_network(config.init_from)  # type: ignore[arg-type]
        src_arch = spec.arch
    if config.arch == "temporal_maskguided" and src_arch == "maskguided":
        from filmclean.nets.temporal import TemporalMaskGuidedNet

        src = TemporalMaskGuidedNet.from_single(src)
    elif src_arch != config.arch:
        raise InputError(f"init_from holds a {src_arch!r} network, the run trains {config.arch!r}", config.init_from)
    elif config.arch == "maskguided":
        if not src.fill_levels and int(config.arch_config.get("fill_levels", 0)):
            src = type(src).from_base(src, int(config.arch_config["fill_levels"]))
        grown = {k: int(config.arch_config.get(k, 0)) for k in ("fine_blocks", "mask_grow")}
        if any(grown[k] != getattr(src, k) for k in grown):
            try:
                src = type(src).grown_from(src, **grown)
            except ValueError as exc:
                raise InputError(f"init_from cannot start this run's network: {exc}", config.init_from) from None
    try:
        net.load_state_dict(src.state_dict(), strict=True)
    except RuntimeError as exc:
        raise InputError(f"init_from weights do not fit the run's network: {exc}", config.init_from) from None


def build_network(config: TrainConfig, fresh: bool) -> nn.Module:
    """The run's network, checked against ``config.temporal``; on a ``fresh`` start it takes the
    weights of ``config.init_from`` when one is given."""
    from filmclean.nets import build_network

    try:
        net = build_network(config.arch, config.arch_config)
    except KeyError as exc:
        raise InputError(str(exc.args[0]) if exc.args else str(exc)) from None
    except TypeError as exc:
        raise InputError(f"cannot build network {config.arch!r}: {exc}") from None
    in_channels = int(getattr(net, "in_channels", 3))
    if config.temporal and in_channels != 11:
        raise InputError(
            f"a temporal run needs a temporal network (11 input channels); {config.arch!r} takes {in_channels}"
        )
    if not config.temporal and in_channels != 3:
        raise InputError(
            f"network {config.arch!r} takes {in_channels} input channels: set temporal to true to train it"
        )
    if config.init_from is not None and fresh:
        _initial_weights(net, config)
    return net


def build_loss(config: TrainConfig) -> nn.Module:
    """The loss ``config.loss`` with ``config.loss_kwargs`` (:func:`filmclean.train.losses.build_loss`);
    raises :class:`InputError` when it cannot be built."""
    try:
        from .losses import build_loss
    except ImportError as exc:
        raise InputError(f"losses are not available (filmclean.train.losses: {exc})") from None
    try:
        return build_loss(config.loss, **config.loss_kwargs)
    except FilmcleanError:
        raise
    except (KeyError, ValueError, TypeError) as exc:
        raise InputError(f"cannot build loss {config.loss!r}: {exc.args[0] if exc.args else exc}") from None


def set_encoder_frozen(net: nn.Module, frozen: bool, train_bn: bool = True) -> int:
    """Make every parameter trainable, then, when ``frozen`` and the network has
    ``encoder_parameters()``, freeze those -- except the ones listed by ``encoder_norm_parameters()``
    (if the network has it) when ``train_bn`` (fastai's default: normalisation layers keep
    training in a frozen encoder). Returns the number of frozen parameter tensors."""
    for p in net.parameters():
        p.requires_grad_(True)
    n = 0
    if frozen and hasattr(net, "encoder_parameters"):
        keep: set[int] = set()
        if train_bn and hasattr(net, "encoder_norm_parameters"):
            keep = {id(p) for p in net.encoder_norm_parameters()}  # type: ignore[operator]
        for p in net.encoder_parameters():  # type: ignore[operator]
            if id(p) not in keep:
                p.requires_grad_(False)
                n += 1
    return n


__all__ = ["build_loss", "build_network", "set_encoder_frozen"]
